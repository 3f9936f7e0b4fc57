#ifndef CIONLABSYS_H
#define CIONLABSYS_H

#include <sys/types.h>

/// Spawns `argv[0]` (searched in PATH when it has no slash) as the leader of a new process group.
/// `fds` are the child's stdin, stdout and stderr; `report_fd`, unless -1, becomes its descriptor 3. Every
/// other descriptor is closed in the child. `cwd` may be NULL. Returns 0 or an errno value.
int ionlab_spawn(const char *const argv[], const char *const envp[], const char *cwd,
                 int stdin_fd, int stdout_fd, int stderr_fd, int report_fd, pid_t *pid_out);

/// Spawns `argv[0]` on a new pseudo-terminal of `rows` × `columns`, as the leader of a new session whose
/// controlling terminal it is (so Ctrl-C, Ctrl-Z and window changes reach its foreground job as signals).
/// Sets *master_out to the terminal's master side (close-on-exec). Returns 0 or an errno value.
int ionlab_spawn_pty(const char *const argv[], const char *const envp[], const char *cwd,
                     unsigned short rows, unsigned short columns, pid_t *pid_out, int *master_out);

/// Sets a terminal's window size (the kernel signals SIGWINCH to its foreground job). Returns 0 or -1.
int ionlab_set_window_size(int fd, unsigned short rows, unsigned short columns);

/// Reads a terminal's window size. Returns 0 or -1.
int ionlab_window_size(int fd, unsigned short *rows, unsigned short *columns);

/// Decodes a wait status: returns 1 and sets *code for a normal exit, 2 and sets *code to the signal
/// number for a death by signal, 0 otherwise.
int ionlab_decode_wait_status(int status, int *code);

/// pipe2(fds, O_CLOEXEC): both ends close on exec. Returns 0 or -1 with errno set.
int ionlab_pipe_cloexec(int fds[2]);

#endif
