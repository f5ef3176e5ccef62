/* calc-stress: libcalc under harder conditions, one scenario per argument.
 * Prints every result (or per-thread sums) on stdout; exit code 0.
 *
 *   threads   4 threads x 25000 iterations, each: calc_add(i, t) and
 *             calc_div(i, i % 10). calc_add: 100000 calls, never differs;
 *             calc_div: 100000 calls, differs when i % 10 == 0: 10000.
 *   exit-thread
 *             a second thread makes 1000 calc_add and 1000 calc_div(i, i % 4)
 *             calls (250 differ), prints, and calls exit(0) while main is
 *             blocked; the counts must not be lost.
 *   errno     errno must be what the old build (or the app) left:
 *             calc_parse x3 ("123", "99999999999999999999999" -> ERANGE,
 *             "-5"), calc_add x2 with errno preset to 4242 and 0. Never differs.
 *   special   NaN and infinity (any NaN equals any NaN): calc_sqrt(-1),
 *             calc_sqrt(inf), calc_scale(inf, 0), calc_scale(nan, 2): never
 *             differ; calc_hash of "\xff\xfeHello" (not UTF-8): differs (1);
 *             calc_name(-7): never differs; calc_trunc(-0.5) (-0.0 vs
 *             +0.0: differs, 1), calc_trunc(-NaN) (another NaN: equal),
 *             calc_trunc(2.5): never differs.
 *   fork      10 calc_add calls, fork; the child makes 10 calc_div(i, 0)
 *             calls (all differ) and exits with exit(0); the parent waits,
 *             then makes 10 calc_div(i, 1) calls (never differ).
 *   sleep-exit
 *             5 calc_add calls and 3 calc_div(i, 0) calls (all differ), then
 *             sleeps 2.5 s and leaves with _exit(0): only a periodic summary
 *             can tell.
 *   signal    installs its own SIGSEGV handler (SA_SIGINFO), makes 3 calc_add
 *             calls, then dereferences address 0x10: its handler checks
 *             si_addr, prints, and _exit(0)s. libddl's fault handling must
 *             chain to it untouched.
 *   ctor      a constructor of this executable makes 1 calc_add and
 *             1 calc_div(1, 0) call (differs) before main; main makes
 *             1 calc_add call.
 *   spawn     2 calc_add calls, system("exit 7") (a shell that inherits
 *             LD_PRELOAD and DDL_CONFIG, and never loads libcalc), then
 *             1 calc_div(1, 0) call (differs).
 *   closefds  2 calc_div(i, 0) calls (differ), then closes every fd from 3
 *             up (as daemons do), opens its own file (which gets the lowest
 *             free fd), makes 2 more calc_div(i, 0) calls (differ), writes a
 *             line to the file, and prints the file: nothing of libddl's may
 *             land in it.
 *   busy-exit 3 threads call calc_add(1, 1) in a loop, forever; main sleeps
 *             200 ms and returns while they still call: no crash, no hang,
 *             counts that add up (calc_add's total is not deterministic).
 *   sigreentry
 *             a 50 us interval timer whose SIGALRM handler calls
 *             calc_div(7, 7) (checking it returns 1) while main makes 300000 calc_add(i, 1) calls:
 *             boundary calls from a signal handler, often interrupting a
 *             wrapper on the same thread. Nothing differs.
 *   sigthread 5 calc_add calls (so that libddl's threads exist), then main
 *             blocks SIGUSR1, sends it to the process and waits 300 ms: with
 *             no other thread able to take it, it stays pending until main
 *             unblocks it, and the handler runs on main. A library thread
 *             that does not block the app's signals would take it instead.
 *             Then 1 calc_add call.
 *   maps      3 calc_add calls, then prints how many of its mappings come
 *             from a path containing "/new/" (the new build's folder): with
 *             `mode: off` libddl loads nothing, so 0 as without it.
 *   slow      20 calc_slow(200) calls back to back, then main returns. The
 *             new build sleeps 200 ms in each: the caller never waits for
 *             the shadow, and with timeout_ms 100 the drain at exit is
 *             bounded (what is left is counted as dropped). Never differs.
 *   slow-burst
 *             5 calc_slow(100) calls, a 50 ms pause (the shadow is then
 *             awake, inside the new build's first call), then 15 more: with
 *             a ring of 4 slots most of them find it full while the shadow
 *             is busy, and are dropped at the wrapper's entry.
 *   exec      3 calc_add calls and 1 calc_div(1, 0) (differs), then execs
 *             itself (same pid) as "exec-child", which makes 2 calc_add
 *             calls. The summary written before exec must survive.
 *   dladdr    where do the app's function pointers point? dladdr() on
 *             calc_add (through the GOT) and on dlsym(RTLD_DEFAULT,
 *             "calc_div"): the object's base name and the symbol (apps use
 *             this to find their install folder). Then 1 calc_add and 1
 *             calc_div(1, 0) call (differs) through those pointers.
 *   forkstorm a background thread calls calc_add in a loop while main forks
 *             20 children one after the other; each child makes 100
 *             calc_div(i, 1) calls and exit(0)s (a child inherits whatever
 *             lock another thread held at fork time: it must not hang).
 *             Prints how many children exited 0. Nothing differs.
 *   forever   2 threads call calc_div(i, i % 10) (differs when i % 10 == 0)
 *             and calc_add(i, 1) until the process is killed (SIGKILL by the
 *             test): the report must stay readable, the last periodic
 *             summary standing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "calc.h"

#define NTHREADS 4
#define ITERS 25000

static void *worker(void *arg)
{
    long t = (long)arg;
    long long sum = 0;
    for (int i = 0; i < ITERS; i++) {
        sum += calc_add(i, (int)t);
        sum += calc_div(i, i % 10);
    }
    return (void *)(intptr_t)sum;
}

static int threads(void)
{
    pthread_t th[NTHREADS];
    for (long t = 0; t < NTHREADS; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)t) != 0)
            return 1;
    for (int t = 0; t < NTHREADS; t++) {
        void *r;
        pthread_join(th[t], &r);
        printf("thread %d sum %lld\n", t, (long long)(intptr_t)r);
    }
    return 0;
}

static void *exiter(void *arg)
{
    (void)arg;
    long long sum = 0;
    for (int i = 0; i < 1000; i++) {
        sum += calc_add(i, i);
        sum += calc_div(i, i % 4);
    }
    printf("exit-thread sum %lld\n", sum);
    fflush(stdout);
    exit(0);
}

static int exit_thread(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, exiter, NULL) != 0)
        return 1;
    for (;;)
        pause();
}

static int errno_checks(void)
{
    static const char *const in[3] = { "123", "99999999999999999999999", "-5" };
    for (int i = 0; i < 3; i++) {
        errno = 0;
        long r = calc_parse(in[i]);
        int e = errno;
        printf("calc_parse(\"%s\") = %ld errno %d\n", in[i], r, e);
    }
    errno = 4242;
    int r = calc_add(40, 2);
    int e = errno;
    printf("calc_add(40, 2) = %d errno %d\n", r, e);
    errno = 0;
    r = calc_add(1, 2);
    e = errno;
    printf("calc_add(1, 2) = %d errno %d\n", r, e);
    return 0;
}

static int special(void)
{
    double a = calc_sqrt(-1.0);
    printf("calc_sqrt(-1) isnan %d\n", isnan(a));
    printf("calc_sqrt(inf) = %a\n", calc_sqrt(INFINITY));
    float f = calc_scale(INFINITY, 0.0f);
    printf("calc_scale(inf, 0) isnan %d\n", isnan(f));
    f = calc_scale(NAN, 2.0f);
    printf("calc_scale(nan, 2) isnan %d\n", isnan(f));
    printf("calc_hash(\"\\xff\\xfeHello\") = %#llx\n", (unsigned long long)calc_hash("\xff\xfeHello"));
    printf("calc_name(-7) = \"%s\"\n", calc_name(-7));
    printf("calc_trunc(-0.5) = %a\n", calc_trunc(-0.5));
    double t = calc_trunc(-NAN);
    printf("calc_trunc(-nan) isnan %d\n", isnan(t));
    printf("calc_trunc(2.5) = %a\n", calc_trunc(2.5));
    return 0;
}

static int forking(void)
{
    int s = 0;
    for (int i = 0; i < 10; i++)
        s += calc_add(i, 1);
    printf("parent before fork: %d\n", s);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        int c = 0;
        for (int i = 0; i < 10; i++)
            c += calc_div(i, 0);
        printf("child: %d\n", c);
        fflush(stdout);
        exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int p = 0;
    for (int i = 0; i < 10; i++)
        p += calc_div(i * 7, 1);
    printf("parent after child (status %d): %d\n", status, p);
    return 0;
}

static int sleep_exit(void)
{
    int s = 0;
    for (int i = 0; i < 5; i++)
        s += calc_add(i, i);
    for (int i = 0; i < 3; i++)
        s += calc_div(i, 0);
    printf("sleep-exit: %d\n", s);
    fflush(stdout);
    usleep(2500 * 1000);
    _exit(0);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    static const char ok[] = "own SIGSEGV handler: si_addr ok\n";
    static const char bad[] = "own SIGSEGV handler: wrong si_addr\n";
    if (sig == SIGSEGV && si->si_addr == (void *)0x10)
        write(1, ok, sizeof ok - 1);
    else
        write(1, bad, sizeof bad - 1);
    _exit(0);
}

static int signal_chain(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0)
        return 1;
    int s = 0;
    for (int i = 0; i < 3; i++)
        s += calc_add(i, 2);
    printf("signal: %d\n", s);
    fflush(stdout);
    usleep(100 * 1000); /* let the shadow run (its handlers installed, if lazily) */
    uintptr_t addr = 0x10;
    __asm__("" : "+r"(addr)); /* hide the constant from the compiler */
    *(volatile int *)addr = 1;
    printf("not reached\n");
    return 1;
}

static int ctor_add, ctor_div;

__attribute__((constructor)) static void early(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "ctor")) {
        ctor_add = calc_add(100, 1);
        ctor_div = calc_div(1, 0);
    }
}

static int ctor(void)
{
    printf("ctor: calc_add(100, 1) = %d, calc_div(1, 0) = %d\n", ctor_add, ctor_div);
    printf("main: calc_add(2, 2) = %d\n", calc_add(2, 2));
    return 0;
}

static int spawn(void)
{
    int s = calc_add(1, 1) + calc_add(2, 2);
    fflush(stdout);
    int st = system("exit 7");
    printf("spawn: %d, shell status %d\n", s, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    printf("calc_div(1, 0) = %d\n", calc_div(1, 0));
    return 0;
}

static int closefds(void)
{
    int s = calc_div(1, 0) + calc_div(2, 0);
    usleep(200 * 1000); /* let libddl judge and report them (its files are open now) */
    for (int fd = 3; fd < 4096; fd++)
        close(fd);
    int fd = open("app-own-file.txt", O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0)
        return 1;
    s += calc_div(3, 0) + calc_div(4, 0);
    usleep(200 * 1000); /* give the shadow time to write its records */
    char line[64];
    int n = snprintf(line, sizeof line, "app line: %d\n", s);
    if (write(fd, line, (size_t)n) != n)
        return 1;
    lseek(fd, 0, SEEK_SET);
    char buf[4096];
    ssize_t r = read(fd, buf, sizeof buf);
    close(fd);
    printf("closefds: the app's own file holds %zd bytes:\n", r);
    fwrite(buf, 1, r > 0 ? (size_t)r : 0, stdout);
    return 0;
}

static void *busy(void *arg)
{
    (void)arg;
    volatile long sink = 0;
    for (;;)
        sink += calc_add(1, 1);
    return NULL;
}

static int busy_exit(void)
{
    pthread_t th[3];
    for (int t = 0; t < 3; t++)
        if (pthread_create(&th[t], NULL, busy, NULL) != 0)
            return 1;
    usleep(200 * 1000);
    printf("busy-exit: main returns\n");
    return 0;
}

static volatile sig_atomic_t alarms, alarm_bad, alarm_last_bad;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    int r = calc_div(7, 7);
    if (r != 1) {
        alarm_bad++;
        alarm_last_bad = r;
    }
    alarms++;
    errno = saved;
}

static int sigreentry(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 50 }, { 0, 50 } };
    setitimer(ITIMER_REAL, &it, NULL);
    long long sum = 0;
    for (int i = 0; i < 300000; i++)
        sum += calc_add(i, 1);
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    printf("sigreentry: sum %lld, wrong results in the handler: %d\n", sum, (int)alarm_bad);
    if (alarm_bad)
        fprintf(stderr, "calc-stress: %d of %d calc_div(7, 7) calls in the SIGALRM handler returned a wrong value (last: %d)\n",
                (int)alarm_bad, (int)alarms, (int)alarm_last_bad);
    return 0;
}

static void *forever_worker(void *arg)
{
    (void)arg;
    volatile long sink = 0;
    for (unsigned i = 0;; i++)
        sink += calc_div((int)i, (int)(i % 10)) + calc_add((int)i, 1);
    return NULL;
}

static pthread_t main_thread;
static volatile sig_atomic_t usr1_runs, usr1_on_main;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_runs++;
    usr1_on_main = pthread_equal(pthread_self(), main_thread) ? 1 : 0;
}

static int sigthread(void)
{
    main_thread = pthread_self();
    int s = 0;
    for (int i = 0; i < 5; i++)
        s += calc_add(i, 3);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGUSR1);
    usleep(300 * 1000);
    int before = usr1_runs;
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    printf("sigthread: %d; handler runs while main blocked SIGUSR1: %d; after unblocking: %d, on main: %d\n",
           s, before, (int)usr1_runs, (int)usr1_on_main);
    printf("calc_add(1, 1) = %d\n", calc_add(1, 1));
    return 0;
}

static int maps(void)
{
    int s = calc_add(1, 2) + calc_add(3, 4) + calc_add(5, 6);
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 1;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "/new/"))
            n++;
    fclose(f);
    printf("maps: %d; mappings from a /new/ folder: %d\n", s, n);
    return 0;
}

static int slow(void)
{
    int s = 0;
    for (int i = 0; i < 20; i++)
        s += calc_slow(200);
    printf("slow: %d\n", s);
    return 0;
}

static int slow_burst(void)
{
    int s = 0;
    for (int i = 0; i < 5; i++)
        s += calc_slow(100);
    usleep(50 * 1000);
    for (int i = 0; i < 15; i++)
        s += calc_slow(100);
    printf("slow-burst: %d\n", s);
    return 0;
}

static int exec_self(char *argv0)
{
    int s = calc_add(1, 1) + calc_add(2, 2) + calc_add(3, 3);
    printf("exec: before %d, calc_div(1, 0) = %d\n", s, calc_div(1, 0));
    fflush(stdout);
    execl("/proc/self/exe", argv0, "exec-child", (char *)NULL);
    printf("exec failed\n");
    return 1;
}

static int exec_child(void)
{
    printf("exec-child: %d\n", calc_add(10, 1) + calc_add(20, 2));
    return 0;
}

static void where(const char *what, void *p)
{
    Dl_info info;
    memset(&info, 0, sizeof info);
    if (!dladdr(p, &info) || !info.dli_fname) {
        printf("dladdr(%s): not found\n", what);
        return;
    }
    const char *base = strrchr(info.dli_fname, '/');
    printf("dladdr(%s): %s %s%s\n", what, base ? base + 1 : info.dli_fname,
           info.dli_sname ? info.dli_sname : "?", info.dli_saddr == p ? " (exact)" : "");
}

static int dladdr_check(void)
{
    int (*add)(int, int) = calc_add;
    int (*div)(int, int) = (int (*)(int, int))dlsym(RTLD_DEFAULT, "calc_div");
    where("calc_add", (void *)add);
    where("dlsym calc_div", (void *)div);
    printf("calc_add(2, 3) = %d\n", add(2, 3));
    printf("calc_div(1, 0) = %d\n", div ? div(1, 0) : -99);
    return 0;
}

static volatile int storm_stop;

static void *storm_busy(void *arg)
{
    (void)arg;
    volatile long sink = 0;
    while (!storm_stop)
        sink += calc_add(1, 2);
    return NULL;
}

static int forkstorm(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, storm_busy, NULL) != 0)
        return 1;
    int ok = 0;
    for (int k = 0; k < 20; k++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            long s = 0;
            for (int i = 0; i < 100; i++)
                s += calc_div(i, 1);
            exit(s == 4950 ? 0 : 3);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    storm_stop = 1;
    pthread_join(th, NULL);
    printf("forkstorm: %d of 20 children exited 0\n", ok);
    return 0;
}

static int forever(void)
{
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        if (pthread_create(&th[t], NULL, forever_worker, NULL) != 0)
            return 1;
    printf("forever: running\n");
    fflush(stdout);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "threads"))
        return threads();
    if (!strcmp(what, "exit-thread"))
        return exit_thread();
    if (!strcmp(what, "errno"))
        return errno_checks();
    if (!strcmp(what, "special"))
        return special();
    if (!strcmp(what, "fork"))
        return forking();
    if (!strcmp(what, "sleep-exit"))
        return sleep_exit();
    if (!strcmp(what, "signal"))
        return signal_chain();
    if (!strcmp(what, "ctor"))
        return ctor();
    if (!strcmp(what, "spawn"))
        return spawn();
    if (!strcmp(what, "closefds"))
        return closefds();
    if (!strcmp(what, "busy-exit"))
        return busy_exit();
    if (!strcmp(what, "sigreentry"))
        return sigreentry();
    if (!strcmp(what, "forever"))
        return forever();
    if (!strcmp(what, "sigthread"))
        return sigthread();
    if (!strcmp(what, "maps"))
        return maps();
    if (!strcmp(what, "slow"))
        return slow();
    if (!strcmp(what, "slow-burst"))
        return slow_burst();
    if (!strcmp(what, "exec"))
        return exec_self(argv[0]);
    if (!strcmp(what, "dladdr"))
        return dladdr_check();
    if (!strcmp(what, "forkstorm"))
        return forkstorm();
    if (!strcmp(what, "exec-child"))
        return exec_child();
    fprintf(stderr, "usage: calc-stress threads|exit-thread|errno|special|fork|sleep-exit|signal|ctor|spawn|closefds|busy-exit|sigreentry|forever|sigthread|maps|slow|slow-burst|exec|dladdr|forkstorm\n");
    return 2;
}
