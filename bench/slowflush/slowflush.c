/*
 * slowflush: an LD_PRELOAD library for the creators phase of kmshsm-bench that makes
 * fsync(2) and fdatasync(2) take as long as on a disk whose cache flush costs
 * SLOWFLUSH_US microseconds (a SATA SSD or a networked cloud volume: 0.5–2 ms), on a
 * machine whose own disk flushes in ~0.1 ms.
 *
 * Each call first does the real fsync/fdatasync (the data really reaches the disk), then
 * waits for a modelled device flush. The model is the one Linux's block layer gives a
 * disk with a volatile write cache: one flush runs at a time; a flush asked for while
 * one runs waits for the next, and that next one serves everybody who asked meanwhile.
 * The device's state is shared by every process of the run through the file named by
 * SLOWFLUSH_STATE (created and set up by the first process; a process-shared mutex and
 * condition variable), so threads and processes queue for the same device.
 *
 * It changes no result of a call: it only delays the return. Without SLOWFLUSH_US or
 * SLOWFLUSH_STATE in the environment it adds nothing.
 *
 *   cc -O2 -shared -fPIC -o slowflush.so slowflush.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READY 0x736c6f77666c7368ULL /* "slowflsh" */

struct device {
    pthread_mutex_t mutex;
    pthread_cond_t flushed;
    uint64_t started;   /* flushes begun */
    uint64_t completed; /* the number of the newest completed flush */
    int running;        /* a flush is in progress */
    uint64_t ready;     /* READY once set up */
};

static struct device *dev;
static long flush_us;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void set_up(void)
{
    const char *us = getenv("SLOWFLUSH_US");
    const char *path = getenv("SLOWFLUSH_STATE");
    if (!us || !path || atol(us) <= 0)
        return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    /* One process sets the device up; the others wait for it under the same lock. */
    if (flock(fd, LOCK_EX) != 0) {
        close(fd);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size < (off_t)sizeof(struct device)) {
        if (ftruncate(fd, sizeof(struct device)) != 0) {
            close(fd);
            return;
        }
    }
    struct device *d = mmap(NULL, sizeof *d, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (d == MAP_FAILED) {
        close(fd);
        return;
    }
    if (d->ready != READY) {
        pthread_mutexattr_t ma;
        pthread_mutexattr_init(&ma);
        pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
        pthread_mutex_init(&d->mutex, &ma);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
        pthread_cond_init(&d->flushed, &ca);
        d->started = d->completed = 0;
        d->running = 0;
        __atomic_store_n(&d->ready, READY, __ATOMIC_RELEASE);
    }
    flock(fd, LOCK_UN);
    close(fd);
    flush_us = atol(us);
    dev = d;
}

static void device_flush(void)
{
    pthread_once(&once, set_up);
    if (!dev)
        return;
    pthread_mutex_lock(&dev->mutex);
    /* The flush that begins next is the first to cover what was written before now. */
    uint64_t mine = dev->started + 1;
    while (dev->completed < mine) {
        if (dev->running) {
            pthread_cond_wait(&dev->flushed, &dev->mutex);
            continue;
        }
        dev->running = 1;
        uint64_t number = ++dev->started;
        pthread_mutex_unlock(&dev->mutex);
        struct timespec t = {flush_us / 1000000, (flush_us % 1000000) * 1000};
        while (nanosleep(&t, &t) != 0 && errno == EINTR) {
        }
        pthread_mutex_lock(&dev->mutex);
        dev->running = 0;
        dev->completed = number;
        pthread_cond_broadcast(&dev->flushed);
    }
    pthread_mutex_unlock(&dev->mutex);
}

/* The real call, then (when it succeeded) the modelled device flush; errno as it left it. */
static int synced(int (**real)(int), const char *name, int fd)
{
    if (!*real)
        *real = (int (*)(int))dlsym(RTLD_NEXT, name);
    int rc = (*real)(fd);
    int saved = errno;
    if (rc == 0)
        device_flush();
    errno = saved;
    return rc;
}

int fdatasync(int fd)
{
    static int (*real)(int);
    return synced(&real, "fdatasync", fd);
}

int fsync(int fd)
{
    static int (*real)(int);
    return synced(&real, "fsync", fd);
}
