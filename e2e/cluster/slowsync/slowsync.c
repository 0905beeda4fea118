/*
 * slowsync: a preload library for PostgreSQL, FOR FAULT TESTS ONLY.
 * fsync and fdatasync sleep for the milliseconds written in the file
 * TWONODE_SLOW_SYNC_FILE names (nothing, 0 or no file: no delay), then
 * do the real call: a disk that still answers, slowly. Read at every call,
 * so a test slows and heals a running server by writing the file.
 * Built by e2e/cluster (cc -shared -fPIC), never shipped.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_ms(void)
{
	const char *path = getenv("TWONODE_SLOW_SYNC_FILE");
	char buf[32];
	ssize_t n;
	int fd;

	if (path == NULL)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

static void stall(void)
{
	long ms = delay_ms();
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0)
		;
}

int fsync(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	stall();
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	stall();
	return real(fd);
}
