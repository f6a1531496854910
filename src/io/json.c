/*
  Result documents and atomic file writes.

  A result is a JSON object built on every rank and written by rank 0. Files are written to a
  temporary name beside the target ("<path>.tmp.<pid>"), flushed to disk with fsync and renamed
  over the target: rename within one folder is atomic, so a reader sees the old file or the new
  one, never a half-written one, and a failed run leaves an existing result untouched. Doubles
  are serialised by json-c with 17 significant digits, which round-trips every double exactly.
  Also here: the typed reading of checkpoints (NtkJSONGetMember) and the early checks that an
  output file or folder can be written (NtkCheckWritable, NtkEnsureFolder).
*/
#include <ntk/io.h>
#include <ntk/sys.h>
#include <ntk_config.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Write all bytes to fd, retrying after interrupted or partial writes; returns 0 or an errno. */
static int WriteAll(int fd, const void *data, size_t len)
{
  const char *p = (const char *)data;

  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Make the rename itself durable; failure here does not endanger the data, so it is ignored. */
static void SyncFolder(const char path[])
{
  char        dir[PETSC_MAX_PATH_LEN];
  const char *slash = strrchr(path, '/');
  int         fd;

  if (!slash) (void)strcpy(dir, ".");
  else if (slash == path) (void)strcpy(dir, "/");
  else if ((size_t)(slash - path) < sizeof(dir)) {
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = 0;
  } else return;
  fd = open(dir, O_RDONLY);
  if (fd < 0) return;
  (void)fsync(fd);
  (void)close(fd);
}

/*
  Test hook: NTK_TEST_WRITE_PAUSE=<seconds> stops every atomic write half-way through the temporary
  file for that long, so that tests/hostile/atomic_kill.py can kill a run in mid-write and check
  that the target still holds the previous result (or nothing).
*/
static unsigned TestWritePause(void)
{
  const char *s = getenv("NTK_TEST_WRITE_PAUSE");
  return s ? (unsigned)strtoul(s, NULL, 10) : 0;
}

PetscErrorCode NtkWriteFileAtomic(const char path[], const void *data, size_t len)
{
  char     tmp[PETSC_MAX_PATH_LEN + 32];
  int      fd, err = 0;
  unsigned pause = TestWritePause();
  size_t   half  = pause ? len / 2 : len;

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()));
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  PetscCheck(fd >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot write %s: %s", path,
             strerror(errno));
  err = WriteAll(fd, data, half);
  if (!err && pause) {
    (void)fsync(fd);
    (void)sleep(pause);
  }
  if (!err) err = WriteAll(fd, (const char *)data + half, len - half);
  if (!err && fsync(fd)) err = errno;
  if (close(fd) && !err) err = errno;
  if (!err && rename(tmp, path)) err = errno;
  if (err) {
    (void)unlink(tmp);
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "cannot write %s: %s", path, strerror(err));
  }
  SyncFolder(path);
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode JSONWriteRoot(json_object *obj, const char path[])
{
  const char *text;
  size_t      len;
  char       *buf;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
  PetscCheck(text, PETSC_COMM_SELF, PETSC_ERR_MEM, "cannot serialise the result for %s", path);
  len = strlen(text);
  PetscCall(PetscMalloc1(len + 1, &buf));
  memcpy(buf, text, len);
  buf[len] = '\n';
  ierr     = NtkWriteFileAtomic(path, buf, len + 1);
  PetscCall(PetscFree(buf));
  PetscCall(ierr);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* Rank 0 writes; the outcome is shared so that a failed write fails every rank. */
PetscErrorCode NtkJSONWrite(MPI_Comm comm, json_object *obj, const char path[])
{
  PetscMPIInt    rank;
  PetscErrorCode ierr = PETSC_SUCCESS;
  int            code;
  char          *msg  = NULL;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
    ierr = JSONWriteRoot(obj, path);
    PetscCall(PetscPopErrorHandler());
    if (ierr) PetscCall(PetscErrorMessage(ierr, NULL, &msg));
  }
  /* NtkCheckAll shares the message only, so rank 0's error code is sent along first */
  code = (int)ierr;
  PetscCallMPI(MPI_Bcast(&code, 1, MPI_INT, 0, comm));
  PetscCall(NtkCheckAll(comm, ierr ? PETSC_FALSE : PETSC_TRUE, code, msg));
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkReadFileShared(MPI_Comm comm, const char path[], unsigned char **buf,
                                 size_t *size)
{
  PetscMPIInt rank;
  long        n = -1;

  PetscFunctionBegin;
  *buf = NULL;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    FILE *f = fopen(path, "rb");
    if (f && !fseek(f, 0, SEEK_END)) n = ftell(f);
    if (f && n > 0 && !fseek(f, 0, SEEK_SET)) {
      PetscCall(PetscCalloc1((size_t)n + 1, buf));
      if (fread(*buf, 1, (size_t)n, f) != (size_t)n) n = -1;
    }
    if (f) (void)fclose(f);
  }
  PetscCallMPI(MPI_Bcast(&n, 1, MPI_LONG, 0, comm));
  if (n <= 0 && rank == 0) PetscCall(PetscFree(*buf));
  PetscCheck(n > 0, comm, PETSC_ERR_FILE_OPEN, "cannot read %s", path);
  PetscCheck(n < PETSC_MPI_INT_MAX, comm, PETSC_ERR_FILE_UNEXPECTED, "%s: %ld bytes, too large",
             path, n);
  if (rank) PetscCall(PetscCalloc1((size_t)n + 1, buf));
  PetscCallMPI(MPI_Bcast(*buf, (PetscMPIInt)n, MPI_BYTE, 0, comm));
  *size = (size_t)n;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* JSON has no NaN or Inf: an undefined value (e.g. the error of a single sample) is null. */
static json_object *JSONReal(PetscReal v)
{
  return isfinite(v) ? json_object_new_double((double)v) : NULL;
}

json_object *NtkJSONEstimate(PetscReal value, PetscReal err, const char method[], PetscInt matvecs)
{
  json_object *o = json_object_new_object();

  if (!o) return NULL;
  json_object_object_add(o, "value", JSONReal(value));
  json_object_object_add(o, "stderr", JSONReal(err));
  json_object_object_add(o, "method", json_object_new_string(method ? method : ""));
  json_object_object_add(o, "matvecs", json_object_new_int64((int64_t)matvecs));
  return o;
}

/* Version, command, ranks, and rank 0's date and host, identical in every rank's copy. */
PetscErrorCode NtkJSONAddRunInfo(MPI_Comm comm, json_object *obj, const char command[])
{
  char        date[32] = "", host[256] = "";
  PetscMPIInt rank, size;
  time_t      now;
  struct tm   utc;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  if (rank == 0) {
    now = time(NULL);
    if (gmtime_r(&now, &utc)) (void)strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &utc);
    if (gethostname(host, sizeof(host) - 1)) (void)strcpy(host, "unknown");
  }
  PetscCallMPI(MPI_Bcast(date, (PetscMPIInt)sizeof(date), MPI_CHAR, 0, comm));
  PetscCallMPI(MPI_Bcast(host, (PetscMPIInt)sizeof(host), MPI_CHAR, 0, comm));
  json_object_object_add(obj, "version", json_object_new_string(NTK_VERSION));
  json_object_object_add(obj, "command", json_object_new_string(command ? command : ""));
  json_object_object_add(obj, "ranks", json_object_new_int(size));
  json_object_object_add(obj, "date", json_object_new_string(date));
  json_object_object_add(obj, "hostname", json_object_new_string(host));
  PetscFunctionReturn(PETSC_SUCCESS);
}

static const char *TypeName(json_type type, PetscBool nullable)
{
  switch (type) {
  case json_type_string: return nullable ? "a string or null" : "a string";
  case json_type_int: return nullable ? "an integer or null" : "an integer";
  case json_type_double: return nullable ? "a number or null" : "a number";
  case json_type_boolean: return nullable ? "true, false or null" : "true or false";
  case json_type_array: return nullable ? "an array or null" : "an array";
  case json_type_object: return nullable ? "an object or null" : "an object";
  default: return "null";
  }
}

/*
  Check that a value v, named `field`, has the JSON type `type` (json_type_double accepts any
  number; nullable also accepts null). Every rank parsed the same text, so the check fails alike
  on all of them.
*/
PetscErrorCode NtkJSONCheckType(MPI_Comm comm, const char what[], const char file[],
                                const char field[], json_object *v, json_type type,
                                PetscBool nullable)
{
  json_type t = json_object_get_type(v);
  PetscBool ok = t == type || (type == json_type_double && t == json_type_int) ||
                 (nullable && t == json_type_null) ? PETSC_TRUE : PETSC_FALSE;

  PetscFunctionBegin;
  PetscCheck(ok, comm, PETSC_ERR_FILE_UNEXPECTED, "the %s %s is malformed: %s must be %s, not %s",
             what, file, field, TypeName(type, nullable), json_type_to_name(t));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/* The member `key` of obj, which must be present with the given type. */
PetscErrorCode NtkJSONGetMember(MPI_Comm comm, const char what[], const char file[],
                                json_object *obj, const char prefix[], const char key[],
                                json_type type, PetscBool nullable, json_object **v)
{
  char field[128];

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(field, sizeof(field), "%s%s", prefix, key));
  PetscCheck(json_object_object_get_ex(obj, key, v), comm, PETSC_ERR_FILE_UNEXPECTED,
             "the %s %s is malformed: %s is missing", what, file, field);
  PetscCall(NtkJSONCheckType(comm, what, file, field, *v, type, nullable));
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Fail early, before hours of computing, when a result could not be written: `path` must not be a
  folder, and rank 0 creates and removes a probe file in the folder of `path`; every rank learns
  the outcome. An existing target must be a regular file: results are written under a temporary
  name and renamed over it, which must never replace a device such as /dev/null.
*/
PetscErrorCode NtkCheckWritable(MPI_Comm comm, const char path[], const char option[])
{
  char        dir[PETSC_MAX_PATH_LEN], probe[PETSC_MAX_PATH_LEN + 64], msg[512] = "";
  PetscMPIInt rank;
  int         err = 0;

  PetscFunctionBegin;
  if (!path || !path[0]) PetscFunctionReturn(PETSC_SUCCESS);
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (!rank) {
    const char *slash = strrchr(path, '/');
    int         fd;
    struct stat st;

    if (slash) PetscCall(PetscStrncpy(dir, path, (size_t)(slash - path) + 2));
    else PetscCall(PetscStrncpy(dir, "./", sizeof(dir)));
    if (slash && slash == path) PetscCall(PetscStrncpy(dir, "/", sizeof(dir)));
    PetscCall(PetscSNPrintf(probe, sizeof(probe), "%s%s.ntkspec-probe.%d", dir,
                            dir[strlen(dir) - 1] == '/' ? "" : "/", (int)getpid()));
    fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) err = errno;
    else {
      (void)close(fd);
      (void)unlink(probe);
    }
    if (!err && ((slash && !slash[1]) || (!stat(path, &st) && !S_ISREG(st.st_mode)))) {
      err = EISDIR;
      PetscCall(PetscSNPrintf(msg, sizeof(msg), "%s %s: %s; name a file", option, path,
                              slash && !slash[1] ? "names a folder" :
                              S_ISDIR(st.st_mode) ? "is a folder" : "is not a regular file"));
    } else if (err)
      PetscCall(PetscSNPrintf(msg, sizeof(msg), "%s %s: cannot write there (%s)", option, path,
                              strerror(err)));
  }
  PetscCallMPI(MPI_Bcast(&err, 1, MPI_INT, 0, comm));
  PetscCallMPI(MPI_Bcast(msg, (PetscMPIInt)sizeof(msg), MPI_CHAR, 0, comm));
  PetscCheck(!err, comm, PETSC_ERR_FILE_OPEN, "%s", msg);
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Make sure `dir` (given by `option`) is a folder this run can write, creating it if needed,
  before any work: rank 0 looks, every rank learns the verdict and refuses alike.
*/
PetscErrorCode NtkEnsureFolder(MPI_Comm comm, const char option[], const char dir[])
{
  PetscMPIInt rank;
  PetscBool   ok = PETSC_TRUE, exists, isdir;
  char        why[64] = "";

  PetscFunctionBegin;
  PetscCheck(dir[0], comm, PETSC_ERR_ARG_WRONG, "%s needs a folder name", option);
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (rank == 0) {
    struct stat st;
    exists = !stat(dir, &st) ? PETSC_TRUE : PETSC_FALSE;
    isdir  = exists && S_ISDIR(st.st_mode) ? PETSC_TRUE : PETSC_FALSE;
    if (!isdir && exists) {
      ok = PETSC_FALSE;
      PetscCall(PetscStrncpy(why, "it exists and is not a folder", sizeof(why)));
    } else if (!isdir) {
      PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
      ok = PetscMkdir(dir) ? PETSC_FALSE : PETSC_TRUE;
      PetscCall(PetscPopErrorHandler());
      if (!ok) PetscCall(PetscStrncpy(why, "it cannot be created", sizeof(why)));
    }
    if (ok) PetscCall(PetscTestDirectory(dir, 'w', &ok));
    if (!ok && !why[0]) PetscCall(PetscStrncpy(why, "it is not writable", sizeof(why)));
  }
  PetscCallMPI(MPI_Bcast(&ok, 1, MPIU_BOOL, 0, comm));
  PetscCallMPI(MPI_Bcast(why, sizeof(why), MPI_CHAR, 0, comm));
  PetscCheck(ok, comm, PETSC_ERR_FILE_OPEN, "%s %s: %s", option, dir, why);
  PetscFunctionReturn(PETSC_SUCCESS);
}
