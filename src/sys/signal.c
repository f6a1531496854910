/*
  Stopping at a clean point on SIGTERM and SIGUSR1 (a batch system's warning before its time
  limit). The handler only records the signal in a flag; the long-running loops of ntkspec ask
  NtkSignalPending at points where their state is complete (after a probe, a step or a restart),
  and all ranks decide together with one Allreduce of an int, because the signal may reach the
  ranks at different moments, or only some of them. The caller then writes its checkpoint and
  returns; the command exits with NTK_EXIT_INTERRUPTED.

  Install and restore nest: the outermost NtkSignalInstall saves the previous actions and clears
  the flag, the matching last NtkSignalRestore puts the actions back. NtkSignalRaise sets the flag
  as a signal would, so tests can stop a run at a chosen point without timing.
*/
#include <ntk/sys.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t ntk_signal = 0;
static PetscInt              ntk_installed = 0;
static struct sigaction      ntk_old_term, ntk_old_usr1;

static void OnSignal(int sig)
{
  ntk_signal = sig;
}

PetscErrorCode NtkSignalInstall(void)
{
  struct sigaction sa;

  PetscFunctionBegin;
  if (ntk_installed++ > 0) PetscFunctionReturn(PETSC_SUCCESS);
  ntk_signal = 0;
  (void)memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnSignal;
  sa.sa_flags   = SA_RESTART; /* reads and writes in progress resume instead of failing */
  (void)sigemptyset(&sa.sa_mask);
  PetscCheck(!sigaction(SIGTERM, &sa, &ntk_old_term) && !sigaction(SIGUSR1, &sa, &ntk_old_usr1),
             PETSC_COMM_SELF, PETSC_ERR_SYS, "cannot install the SIGTERM/SIGUSR1 handler");
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSignalRestore(void)
{
  PetscFunctionBegin;
  if (ntk_installed == 0 || --ntk_installed > 0) PetscFunctionReturn(PETSC_SUCCESS);
  (void)sigaction(SIGTERM, &ntk_old_term, NULL);
  (void)sigaction(SIGUSR1, &ntk_old_usr1, NULL);
  PetscFunctionReturn(PETSC_SUCCESS);
}

PetscErrorCode NtkSignalRaise(void)
{
  PetscFunctionBegin;
  ntk_signal = SIGTERM;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*
  Test hook: NTK_TEST_STEP_PAUSE=<seconds> waits that long at every check point (each probe or
  restart), so that tests can deliver a real signal mid-run however fast the machine is.
*/
static void TestPause(void)
{
  const char *s = getenv("NTK_TEST_STEP_PAUSE");
  double      t = s ? strtod(s, NULL) : 0;

  if (t > 0) {
    struct timespec ts = {(time_t)t, (long)((t - (double)(time_t)t) * 1e9)};
    (void)nanosleep(&ts, NULL);
  }
}

PetscErrorCode NtkSignalPending(MPI_Comm comm, PetscBool *pending)
{
  int flag;

  PetscFunctionBegin;
  TestPause();
  flag = ntk_signal ? 1 : 0;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MAX, comm));
  *pending = flag ? PETSC_TRUE : PETSC_FALSE;
  if (flag) PetscCall(PetscInfo(NULL, "SIGTERM or SIGUSR1 received: checkpoint and stop\n"));
  PetscFunctionReturn(PETSC_SUCCESS);
}
