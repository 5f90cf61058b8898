/* sbio: the I/O benchmark's probe inside a container (busybox has no timer or random I/O).
 *
 *   sbio seqwrite FILE MIB       write MIB MiB in 1 MiB blocks, fsync; seconds
 *   sbio seqread FILE            read FILE to the end in 1 MiB blocks; seconds
 *   sbio randread FILE OPS       OPS 4 KiB preads at random aligned offsets; seconds
 *   sbio randwrite FILE OPS      OPS 4 KiB pwrites at random aligned offsets, fsync; seconds
 *   sbio run CMD [ARGS...]       run CMD, wait, sync; seconds
 *
 * Prints one number (seconds, CLOCK_MONOTONIC) on stdout; exits non-zero on any error.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

static char block[1 << 20];

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: see the source\n"); return 2; }
    const char *verb = argv[1];
    double start = now();
    if (!strcmp(verb, "run")) {
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) { execvp(argv[2], argv + 2); die("exec"); }
        int status;
        if (waitpid(pid, &status, 0) < 0) die("waitpid");
        sync();
        if (!WIFEXITED(status) || WEXITSTATUS(status)) { fprintf(stderr, "command failed\n"); return 1; }
    } else if (!strcmp(verb, "seqwrite") && argc == 4) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open");
        memset(block, 0x5a, sizeof block);
        for (long i = 0; i < atol(argv[3]); i++)
            if (write(fd, block, sizeof block) != (ssize_t)sizeof block) die("write");
        if (fsync(fd)) die("fsync");
        close(fd);
    } else if (!strcmp(verb, "seqread")) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) die("open");
        ssize_t got;
        while ((got = read(fd, block, sizeof block)) > 0) {}
        if (got < 0) die("read");
        close(fd);
    } else if ((!strcmp(verb, "randread") || !strcmp(verb, "randwrite")) && argc == 4) {
        int writing = verb[4] == 'w';
        int fd = open(argv[2], writing ? O_RDWR : O_RDONLY);
        if (fd < 0) die("open");
        struct stat st;
        if (fstat(fd, &st)) die("fstat");
        long blocks = st.st_size / 4096, ops = atol(argv[3]);
        if (blocks < 1) { fprintf(stderr, "file too small\n"); return 1; }
        srandom(42);
        for (long i = 0; i < ops; i++) {
            off_t at = (off_t)(random() % blocks) * 4096;
            ssize_t n = writing ? pwrite(fd, block, 4096, at) : pread(fd, block, 4096, at);
            if (n != 4096) die(writing ? "pwrite" : "pread");
        }
        if (writing && fsync(fd)) die("fsync");
        close(fd);
    } else {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    printf("%.6f\n", now() - start);
    return 0;
}
