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

/* Spawns `argv[0]` with signals the agent ignores or blocks reset to their defaults, in a process group of its
   own (a timeout or cancel kills its descendants with it) or, with `terminal`, in a session of its own whose
   controlling terminal that is. `fds[i]` becomes the child's descriptor i (-1: none); with `terminal`, the
   terminal is its 0, 1 and 2. Every other descriptor is closed. */
static int spawn(const char *const argv[], const char *const envp[], const char *cwd, const char *terminal,
                 const int fds[], int count, pid_t *pid_out) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) { posix_spawn_file_actions_destroy(&actions); return rc; }

    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short own = terminal != NULL ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP;
    if ((rc = posix_spawnattr_setflags(&attr, own | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0) goto done;
    if (terminal == NULL && (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0) goto done;
    if ((rc = posix_spawnattr_setsigmask(&attr, &none)) != 0) goto done;
    if ((rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0) goto done;

    if (terminal != NULL) {
        /* Opened without O_NOCTTY by a session leader that has none: it becomes the controlling terminal. */
        if ((rc = posix_spawn_file_actions_addopen(&actions, 0, terminal, O_RDWR, 0)) != 0) goto done;
        if ((rc = posix_spawn_file_actions_adddup2(&actions, 0, 1)) != 0) goto done;
        if ((rc = posix_spawn_file_actions_adddup2(&actions, 0, 2)) != 0) goto done;
        count = 3;
    } else {
        for (int fd = 0; fd < count; fd++) {
            if (fds[fd] >= 0 && (rc = posix_spawn_file_actions_adddup2(&actions, fds[fd], fd)) != 0) goto done;
        }
    }
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, count)) != 0) goto done;
    if (cwd != NULL && (rc = posix_spawn_file_actions_addchdir_np(&actions, cwd)) != 0) goto done;

    rc = posix_spawnp(pid_out, argv[0], &actions, &attr, (char *const *)argv, (char *const *)envp);

done:
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int ionlab_spawn(const char *const argv[], const char *const envp[], const char *cwd,
                 int stdin_fd, int stdout_fd, int stderr_fd, int report_fd, pid_t *pid_out) {
    const int fds[] = { stdin_fd, stdout_fd, stderr_fd, report_fd };
    return spawn(argv, envp, cwd, NULL, fds, report_fd >= 0 ? 4 : 3, pid_out);
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
    int rc = spawn(argv, envp, cwd, slave, NULL, 0, pid_out);
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
