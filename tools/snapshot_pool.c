/*
 * snapshot_pool.c - kmsfs snapshot copy's worker threads, progress line
 * and per-file error lines.
 *
 * Workers take the next item from a shared index, so a large file keeps
 * one thread busy while the others go on through the small ones. The
 * main thread only redraws the progress line (stderr, rewritten with \r,
 * four times a second) until every worker has finished. Error lines and
 * the progress line share one lock, so an error never lands in the
 * middle of a progress line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "snapshot.h"

#define PROGRESS_INTERVAL_NS 250000000L

struct pool {
	struct snap *s;
	const size_t *items;
	size_t n;
	size_t next;                 /* __atomic: the next item to take */
	size_t completed;            /* __atomic: items finished */
	uint64_t bytes_total;
	uint64_t bytes_done;         /* __atomic: plaintext bytes of the items finished */
	unsigned running;            /* workers not yet finished; under lock */
	pthread_mutex_t lock;
	pthread_cond_t finished;
	void (*fn)(struct snap *s, struct snap_worker *w, struct snap_entry *e);
};

struct pool_worker {
	struct snap_worker w;
	struct pool *pool;
};

double snap_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void snap_format_bytes(uint64_t n, char *out, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	unsigned u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%llu B", (unsigned long long)n);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}

/* Under out_lock: wipe the progress line so the next output starts a clean line. */
static void clear_progress(struct snap *s)
{
	if (s->progress_shown) {
		fputs("\r\033[K", stderr);
		s->progress_shown = 0;
	}
}

static void vreport(struct snap *s, const char *rel, const char *fmt, va_list ap)
{
	pthread_mutex_lock(&s->out_lock);
	clear_progress(s);
	fputs("kmsfs: snapshot: ", stderr);
	if (rel)
		fprintf(stderr, "%s: ", rel);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&s->out_lock);
}

void snap_fail(struct snap *s, const char *rel, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(s, rel, fmt, ap);
	va_end(ap);
	__atomic_add_fetch(&s->stats.failures, 1, __ATOMIC_RELAXED);
}

void snap_note(struct snap *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(s, NULL, fmt, ap);
	va_end(ap);
}

uint64_t snap_plain_size(const struct snap *s, const struct snap_entry *e)
{
	if (!S_ISREG(e->st.st_mode) || e->st.st_size <= KMSFS_HEADER_LEN)
		return 0;
	return kmsfs_plain_size((uint64_t)e->st.st_size, s->src_vol.cipher);
}

static uint64_t load(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void show_progress(struct pool *p, struct pool_worker *workers, unsigned count,
			  const char *what, double since)
{
	struct snap *s = p->s;
	uint64_t bytes = load(&p->bytes_done), total = p->bytes_total;
	double elapsed = snap_now() - since, rate;
	char done_txt[32], total_txt[32], rate_txt[32], eta[32] = "--:--";

	for (unsigned i = 0; i < count; i++)
		bytes += load(&workers[i].w.cur_bytes);
	if (bytes > total)
		bytes = total;
	rate = elapsed > 0.1 ? (double)bytes / elapsed : 0;
	if (rate > 0) {
		unsigned long left = (unsigned long)((double)(total - bytes) / rate);

		snprintf(eta, sizeof(eta), "%lu:%02lu:%02lu", left / 3600, left / 60 % 60,
			 left % 60);
	}
	snap_format_bytes(bytes, done_txt, sizeof(done_txt));
	snap_format_bytes(total, total_txt, sizeof(total_txt));
	snap_format_bytes((uint64_t)rate, rate_txt, sizeof(rate_txt));
	pthread_mutex_lock(&s->out_lock);
	fprintf(stderr, "\r\033[Kkmsfs: snapshot: %s %zu/%zu files, %s/%s, %s/s, ETA %s",
		what, __atomic_load_n(&p->completed, __ATOMIC_RELAXED), p->n, done_txt, total_txt,
		rate_txt, eta);
	fflush(stderr);
	s->progress_shown = 1;
	pthread_mutex_unlock(&s->out_lock);
}

static void *worker_main(void *arg)
{
	struct pool_worker *pw = arg;
	struct pool *p = pw->pool;

	for (;;) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);

		if (i >= p->n)
			break;
		struct snap_entry *e = &p->s->entries[p->items[i]];

		p->fn(p->s, &pw->w, e);
		__atomic_add_fetch(&p->bytes_done, snap_plain_size(p->s, e), __ATOMIC_RELAXED);
		__atomic_store_n(&pw->w.cur_bytes, 0, __ATOMIC_RELAXED);
		__atomic_add_fetch(&p->completed, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_lock(&p->lock);
	p->running--;
	pthread_cond_signal(&p->finished);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Wait for the workers, redrawing the progress line meanwhile. */
static void wait_workers(struct pool *p, struct pool_worker *workers, unsigned count,
			 const char *what)
{
	double since = snap_now();
	struct timespec until;

	pthread_mutex_lock(&p->lock);
	while (p->running > 0) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += PROGRESS_INTERVAL_NS;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&p->finished, &p->lock, &until) == ETIMEDOUT &&
		    p->s->progress) {
			pthread_mutex_unlock(&p->lock);
			show_progress(p, workers, count, what, since);
			pthread_mutex_lock(&p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_lock(&p->s->out_lock);
	clear_progress(p->s);
	pthread_mutex_unlock(&p->s->out_lock);
}

void snap_pool_run(struct snap *s, const size_t *items, size_t n, const char *what,
		   void (*fn)(struct snap *s, struct snap_worker *w, struct snap_entry *e))
{
	struct pool p = { .s = s, .items = items, .n = n, .fn = fn };
	struct pool_worker workers[256];
	unsigned count = s->jobs, started = 0;

	if (count > sizeof(workers) / sizeof(workers[0]))
		count = sizeof(workers) / sizeof(workers[0]);
	if (count > n)
		count = n ? (unsigned)n : 1;
	for (size_t i = 0; i < n; i++)
		p.bytes_total += snap_plain_size(s, &s->entries[items[i]]);
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.finished, NULL);
	p.running = count;
	for (unsigned i = 0; i < count; i++) {
		workers[i] = (struct pool_worker){ .w = { .s = s }, .pool = &p };
		if (pthread_create(&workers[i].w.thread, NULL, worker_main, &workers[i]) != 0)
			break;
		started++;
	}
	if (started < count) {
		/* Fewer threads than asked: the ones that started share the work. */
		pthread_mutex_lock(&p.lock);
		p.running = started;
		pthread_mutex_unlock(&p.lock);
	}
	if (started == 0) {
		/* None at all: the work is done on this thread (no progress line meanwhile). */
		p.running = 1;
		workers[0] = (struct pool_worker){ .w = { .s = s }, .pool = &p };
		worker_main(&workers[0]);
	}
	wait_workers(&p, workers, started ? started : 1, what);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i].w.thread, NULL);
	pthread_cond_destroy(&p.finished);
	pthread_mutex_destroy(&p.lock);
}
