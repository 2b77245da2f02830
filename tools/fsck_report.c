/*
 * fsck_report.c - how `kmsfs fsck` tells what it found: one line per
 * finding on stdout ("PATH: problem (detail)"), one audit record per
 * finding (eventSource "kmsfs", as a mount records an integrity failure),
 * the counters for the summary, a progress line on a terminal, and the
 * thread pool the file checks run in.
 *
 * Findings come from several workers at once: out_lock keeps each line
 * whole and the progress line (stderr) out of the way of stdout.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsck.h"

#define PROGRESS_INTERVAL_MS 250

void fsck_human_bytes(uint64_t bytes, char *out, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double value = (double)bytes;
	unsigned unit = 0;

	while (value >= 1024 && unit + 1 < sizeof(units) / sizeof(units[0])) {
		value /= 1024;
		unit++;
	}
	if (unit == 0)
		snprintf(out, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(out, len, "%.1f %s", value, units[unit]);
}

/* Caller holds out_lock. */
static void clear_progress(struct fsck *f)
{
	if (f->progress_shown) {
		fputs("\r\033[K", stderr);
		f->progress_shown = 0;
	}
}

static void audit_finding(struct fsck *f, const struct fsck_finding *fd, const char *text)
{
	struct kc_error err = { .status = fd->status };
	struct kc_audit_event ev = {
		.event_source = "kmsfs",
		.event_name = fd->event,
		.caller = &f->svc.caller,
		.key_id = f->have_vol ? f->vol.key_id : NULL,
		.path = fd->path,
		.block_index = fd->block,
		.err = &err,
	};

	/* No key service opened (the config did not parse): no audit log to write to. */
	if (!f->svc.audit)
		return;
	snprintf(err.type, sizeof(err.type), "%s", kc_status_type(fd->status));
	/* A long finding is cut to fit: the stdout line has it whole. */
	snprintf(err.message, sizeof(err.message), "kmsfs fsck: %.480s", text);
	kc_audit_record(f->svc.audit, &ev);
}

void fsck_report(struct fsck *f, const struct fsck_finding *fd, const char *fmt, ...)
{
	char text[1024], line[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (fd->block >= 0)
		snprintf(line, sizeof(line), "block %lld: %s", (long long)fd->block, text);
	else
		snprintf(line, sizeof(line), "%s", text);

	pthread_mutex_lock(&f->out_lock);
	clear_progress(f);
	printf("%s: %s\n", fd->path, line);
	fflush(stdout);
	f->findings++;
	if (fd->repaired) {
		f->repaired++;
		f->status |= FSCK_EXIT_CORRECTED;
	} else {
		f->status |= fd->operational ? FSCK_EXIT_OPERATIONAL : FSCK_EXIT_UNCORRECTED;
	}
	pthread_mutex_unlock(&f->out_lock);
	audit_finding(f, fd, line);
}

void fsck_verbose(struct fsck *f, const char *path, const char *fmt, ...)
{
	va_list ap;

	if (!f->opts.verbose)
		return;
	pthread_mutex_lock(&f->out_lock);
	clear_progress(f);
	printf("%s: ", path);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&f->out_lock);
}

void fsck_add_bytes(struct fsck *f, uint64_t bytes)
{
	__atomic_add_fetch(&f->bytes_done, bytes, __ATOMIC_RELAXED);
}

void fsck_add_blocks(struct fsck *f, uint64_t blocks)
{
	__atomic_add_fetch(&f->blocks_done, blocks, __ATOMIC_RELAXED);
}

/* ---- the pool --------------------------------------------------------------------------- */

struct pool {
	struct fsck *f;
	void (*fn)(struct fsck *f, struct fsck_file *file);
	size_t next;                 /* next file index to take */
	size_t done;                 /* files finished, this phase */
	int finished;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct timespec started;
};

static void *worker(void *arg)
{
	struct pool *p = arg;

	for (;;) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);

		if (i >= p->f->file_count || __atomic_load_n(&p->f->abort, __ATOMIC_RELAXED))
			break;
		p->fn(p->f, &p->f->files[i]);
		__atomic_add_fetch(&p->done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* "kmsfs fsck: 120/5000 files, 1.2 GiB of 40.0 GiB, 310.5 MiB/s, ETA 2m10s" */
static void show_progress(struct pool *p)
{
	struct fsck *f = p->f;
	uint64_t bytes = __atomic_load_n(&f->bytes_done, __ATOMIC_RELAXED);
	size_t done = __atomic_load_n(&p->done, __ATOMIC_RELAXED);
	double elapsed = seconds_since(&p->started);
	double rate = elapsed > 0 ? (double)bytes / elapsed : 0;
	char have[32], total[32], speed[32], eta[32] = "";

	fsck_human_bytes(bytes, have, sizeof(have));
	fsck_human_bytes(f->total_bytes, total, sizeof(total));
	fsck_human_bytes((uint64_t)rate, speed, sizeof(speed));
	if (rate > 0 && f->total_bytes > bytes && !f->opts.quick) {
		uint64_t left = (uint64_t)((double)(f->total_bytes - bytes) / rate);

		snprintf(eta, sizeof(eta), ", ETA %llum%02llus", (unsigned long long)(left / 60),
			 (unsigned long long)(left % 60));
	}
	pthread_mutex_lock(&f->out_lock);
	fprintf(stderr, "\r\033[Kkmsfs fsck: %zu/%zu files, %s of %s, %s/s%s", done,
		f->file_count, have, total, speed, eta);
	fflush(stderr);
	f->progress_shown = 1;
	pthread_mutex_unlock(&f->out_lock);
}

static void wait_with_progress(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	while (!p->finished) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += PROGRESS_INTERVAL_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&p->cond, &p->lock, &until);
		if (!p->finished) {
			pthread_mutex_unlock(&p->lock);
			show_progress(p);
			pthread_mutex_lock(&p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_lock(&p->f->out_lock);
	clear_progress(p->f);
	pthread_mutex_unlock(&p->f->out_lock);
}

/* The watcher: tells the progress loop when every worker has returned. */
struct joiner {
	struct pool *pool;
	pthread_t *threads;
	unsigned count;
};

static void *join_all(void *arg)
{
	struct joiner *j = arg;

	for (unsigned i = 0; i < j->count; i++)
		pthread_join(j->threads[i], NULL);
	pthread_mutex_lock(&j->pool->lock);
	j->pool->finished = 1;
	pthread_cond_signal(&j->pool->cond);
	pthread_mutex_unlock(&j->pool->lock);
	return NULL;
}

void fsck_run_pool(struct fsck *f, void (*fn)(struct fsck *f, struct fsck_file *file),
		   int with_progress)
{
	struct pool p = { .f = f, .fn = fn };
	unsigned jobs = f->opts.jobs ? f->opts.jobs : 1, started = 0;
	pthread_t *threads;
	struct joiner j;
	pthread_t joiner;

	if (f->file_count == 0)
		return;
	if (jobs > f->file_count)
		jobs = (unsigned)f->file_count;
	threads = calloc(jobs, sizeof(*threads));
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	clock_gettime(CLOCK_MONOTONIC, &p.started);
	if (with_progress && f->opts.progress)
		show_progress(&p);       /* at once: the total is known from the start */
	for (unsigned i = 0; threads && i < jobs; i++) {
		if (pthread_create(&threads[i], NULL, worker, &p) != 0)
			break;
		started++;
	}
	if (started == 0) {
		/* No threads to be had: do the work here. */
		worker(&p);
	} else if (with_progress && f->opts.progress) {
		j = (struct joiner){ .pool = &p, .threads = threads, .count = started };
		if (pthread_create(&joiner, NULL, join_all, &j) == 0) {
			wait_with_progress(&p);
			pthread_join(joiner, NULL);
		} else {
			join_all(&j);
		}
	} else {
		for (unsigned i = 0; i < started; i++)
			pthread_join(threads[i], NULL);
	}
	free(threads);
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
}
