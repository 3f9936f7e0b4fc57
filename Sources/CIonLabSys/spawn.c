#define _GNU_SOURCE
#include "CIonLabSys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

int ionlab_spawn(const char *const argv[], const char *const envp[], const char *cwd,
                 int stdin_fd, int stdout_fd, int stderr_fd, int report_fd, pid_t *pid_out) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) { posix_spawn_file_actions_destroy(&actions); return rc; }

    /* The child leads its own process group, so a timeout or cancel can kill all its descendants.
       Signals the agent ignores or blocks are reset to their defaults in the child. */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if ((rc = posix_spawnattr_setflags(&attr, flags)) != 0) goto done;
    if ((rc = posix_spawnattr_setpgroup(&attr, 0)) != 0) goto done;
    if ((rc = posix_spawnattr_setsigmask(&attr, &none)) != 0) goto done;
    if ((rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0) goto done;

    if ((rc = posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2)) != 0) goto done;
    if (report_fd >= 0 && (rc = posix_spawn_file_actions_adddup2(&actions, report_fd, 3)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, report_fd >= 0 ? 4 : 3)) != 0) goto done;
    if (cwd != NULL && (rc = posix_spawn_file_actions_addchdir_np(&actions, cwd)) != 0) goto done;

    rc = posix_spawnp(pid_out, argv[0], &actions, &attr, (char *const *)argv, (char *const *)envp);

done:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int ionlab_decode_wait_status(int status, int *code) {
    if (WIFEXITED(status)) { *code = WEXITSTATUS(status); return 1; }
    if (WIFSIGNALED(status)) { *code = WTERMSIG(status); return 2; }
    return 0;
}

int ionlab_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int ionlab_spawn_pty(const char *const argv[], const char *const envp[], const char *cwd,
                     unsigned short rows, unsigned short columns, pid_t *pid_out, int *master_out) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return errno;
    char slave[128];
    if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, slave, sizeof slave) != 0) {
        int error = errno;
        close(master);
        return error;
    }
    ionlab_set_window_size(master, rows, columns);

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) { close(master); return rc; }
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) { posix_spawn_file_actions_destroy(&actions); close(master); return rc; }

    /* A new session: the terminal opened next, without O_NOCTTY, becomes its controlling terminal, and the
       session's process group is the one a timeout or cancel kills. */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short flags = POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if ((rc = posix_spawnattr_setflags(&attr, flags)) != 0) goto done;
    if ((rc = posix_spawnattr_setsigmask(&attr, &none)) != 0) goto done;
    if ((rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_addopen(&actions, 0, slave, O_RDWR, 0)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_adddup2(&actions, 0, 1)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_adddup2(&actions, 0, 2)) != 0) goto done;
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3)) != 0) goto done;
    if (cwd != NULL && (rc = posix_spawn_file_actions_addchdir_np(&actions, cwd)) != 0) goto done;

    rc = posix_spawnp(pid_out, argv[0], &actions, &attr, (char *const *)argv, (char *const *)envp);

done:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc == 0) *master_out = master; else close(master);
    return rc;
}

int ionlab_set_window_size(int fd, unsigned short rows, unsigned short columns) {
    struct winsize size = { .ws_row = rows, .ws_col = columns };
    return ioctl(fd, TIOCSWINSZ, &size);
}

int ionlab_window_size(int fd, unsigned short *rows, unsigned short *columns) {
    struct winsize size;
    if (ioctl(fd, TIOCGWINSZ, &size) != 0) return -1;
    *rows = size.ws_row;
    *columns = size.ws_col;
    return 0;
}
