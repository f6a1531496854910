/*
  ntk/io.h - model files and result documents.

  Models are safetensors files: an 8-byte little-endian header length, a JSON header naming each
  tensor's dtype (F32 or F64), shape and byte range, then the raw little-endian data. Dense layers
  are named as a PyTorch nn.Sequential state dict names them ("0.weight" [out, in], "0.bias",
  "2.weight", ...); the metadata keys "activation" and "parameterization" carry the rest of the
  architecture.

  Results are JSON documents written atomically: to a temporary name beside the target, then
  renamed, so an existing result is never left half-written.
*/
#pragma once
#include <ntk/compat.h>
#include <ntk/net.h>
#include <json-c/json.h>

PETSC_EXTERN PetscErrorCode NtkNetLoadSafetensors(NtkNet, const char[]);
PETSC_EXTERN PetscErrorCode NtkNetSaveSafetensors(NtkNet, const char[]);

/* Write `len` bytes atomically to `path` (temporary file in the same folder, fsync, rename). */
PETSC_EXTERN PetscErrorCode NtkWriteFileAtomic(const char[], const void *, size_t);
/* Rank 0 reads a whole file and every rank gets the bytes plus a terminating 0 (PetscFree). */
PETSC_EXTERN PetscErrorCode NtkReadFileShared(MPI_Comm, const char[], unsigned char **, size_t *);
/* Refuse, on every rank, an output path whose folder cannot be written (before any work). */
PETSC_EXTERN PetscErrorCode NtkCheckWritable(MPI_Comm, const char[], const char[]);
/* The folder dir (named by option in messages) exists or is created, and is writable. */
PETSC_EXTERN PetscErrorCode NtkEnsureFolder(MPI_Comm, const char[], const char[]);
/* Serialise a JSON object with two-space indentation and write it atomically (rank 0 only). */
PETSC_EXTERN PetscErrorCode NtkJSONWrite(MPI_Comm, json_object *, const char[]);

/* Builders that keep result code short. */
PETSC_EXTERN json_object *NtkJSONEstimate(PetscReal, PetscReal, const char[], PetscInt);
PETSC_EXTERN PetscErrorCode NtkJSONAddRunInfo(MPI_Comm, json_object *, const char[]);
/*
  Typed reading of a file ntkspec wrote (checkpoints): NtkJSONCheckType refuses a value v, named
  `field`, whose JSON type is not `type` (json_type_double accepts any number; nullable also
  null); NtkJSONGetMember gets obj[key], which must be present with that type, naming it
  prefix + key. The message reads "the <what> <file> is malformed: <field> must be ..., not ...".
  Collective on comm: every rank parsed the same text and reaches the same verdict.
*/
PETSC_EXTERN PetscErrorCode NtkJSONCheckType(MPI_Comm, const char[], const char[], const char[],
                                             json_object *, json_type, PetscBool);
PETSC_EXTERN PetscErrorCode NtkJSONGetMember(MPI_Comm, const char[], const char[], json_object *,
                                             const char[], const char[], json_type, PetscBool,
                                             json_object **);
