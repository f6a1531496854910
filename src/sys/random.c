/*
  Counter-based random numbers. A value is a hash of (seed, stream, index) by the SplitMix64
  finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014),
  applied twice to decorrelate the three keys. Statistical quality is ample for initialisation and
  probe vectors; what matters here is that the value for a global index is independent of which
  rank computes it.
*/
#include <ntk/sys.h>
#include <math.h>

static inline uint64_t Mix64(uint64_t z)
{
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t Hash3(PetscInt64 seed, PetscInt64 stream, PetscInt64 i)
{
  uint64_t h = Mix64((uint64_t)seed + 0x9e3779b97f4a7c15ULL);
  h          = Mix64(h ^ ((uint64_t)stream * 0xd1b54a32d192ed03ULL));
  return Mix64(h ^ ((uint64_t)i * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL));
}

/* 53 random bits, offset by half an ulp so that the result lies strictly inside (0, 1). */
PetscReal NtkRandomUniform(PetscInt64 seed, PetscInt64 stream, PetscInt64 i)
{
  return ((PetscReal)(Hash3(seed, stream, i) >> 11) + 0.5) * 0x1.0p-53;
}

/* Box-Muller on two uniforms drawn from sub-streams 2i and 2i+1. */
PetscReal NtkRandomNormal(PetscInt64 seed, PetscInt64 stream, PetscInt64 i)
{
  PetscReal u1 = NtkRandomUniform(seed, stream, 2 * i);
  PetscReal u2 = NtkRandomUniform(seed, stream, 2 * i + 1);
  return sqrt(-2.0 * log(u1)) * cos(2.0 * PETSC_PI * u2);
}

PetscReal NtkRandomSign(PetscInt64 seed, PetscInt64 stream, PetscInt64 i)
{
  return (Hash3(seed, stream, i) >> 63) ? 1.0 : -1.0;
}
