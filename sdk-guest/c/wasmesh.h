/*
 * wasmesh.h - guest SDK for wasmesh daemons (guest ABI v1), C and C++.
 *
 * Single header. Include it in exactly one translation unit and define
 *
 *     int wasmesh_handle(const wasmesh_event *ev);
 *
 * which returns 0 on success, or non-zero to fail the event (set the message
 * with wasmesh_fail, which returns 1 so `return wasmesh_fail("...");` works).
 * Outputs are the wasmesh_emit calls made during the handler.
 *
 * Optional hooks, each enabled by defining a macro before the #include:
 *
 *   WASMESH_INIT         you define
 *                          int wasmesh_on_init(const uint8_t *config, size_t len);
 *                        called once at spawn (never after a restore).
 *   WASMESH_COOPERATIVE  you define
 *                          int wasmesh_on_snapshot(void);   (call wasmesh_state_write)
 *                          int wasmesh_on_restore(const uint8_t *state, size_t len);
 *                        and the host stores what you write instead of
 *                        copying linear memory. Without it, ordinary static
 *                        variables are snapshotted transparently.
 *
 * Other translation units of the same module may include the header for the
 * helpers after defining WASMESH_DECLARE_ONLY (the exports must exist once).
 *
 * Build without any libc (imports nothing but "wasmesh"):
 *
 *   clang --target=wasm32-unknown-unknown -nostdlib -O2 \
 *         -Wl,--no-entry -Wl,--stack-first -Wl,--strip-all -o daemon.wasm daemon.c
 *
 * (--stack-first: wasm-ld otherwise puts the 64 KiB shadow stack after the
 * data, where an overflow silently overwrites static variables; below the
 * data it runs off address 0 and traps.)
 *
 * C++: the same with clang++ and -fno-exceptions -fno-rtti. With wasi-libc
 * (--target=wasm32-wasi -mexec-model=reactor) the input buffer comes from
 * malloc instead of the built-in bump allocator. Without libc the compiler
 * may still emit calls to memcpy/memset for large copies; wasm-ld then
 * reports them as undefined: add -mbulk-memory or define them yourself.
 */
#ifndef WASMESH_H
#define WASMESH_H

#include <stddef.h>
#include <stdint.h>

/* Where the input buffer comes from: wasi-libc's malloc when there is a libc,
 * else the bump allocator below. Define one of these to override. */
#if !defined(WASMESH_USE_MALLOC) && !defined(WASMESH_USE_BUMP)
#if defined(__wasi__)
#define WASMESH_USE_MALLOC 1
#else
#define WASMESH_USE_BUMP 1
#endif
#endif

#if defined(WASMESH_USE_MALLOC) && !defined(WASMESH_DECLARE_ONLY)
#include <stdlib.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Log levels for wasmesh_log. */
enum {
	WASMESH_DEBUG = 0,
	WASMESH_INFO = 1,
	WASMESH_WARN = 2,
	WASMESH_ERROR = 3
};

/* One inbound event. payload points into the input buffer and is valid only
 * during the wasmesh_handle call. */
typedef struct wasmesh_event {
	uint64_t origin; /* hash of the sender's origin */
	uint64_t seq;    /* the sender's sequence number */
	const uint8_t *payload;
	size_t len;
} wasmesh_event;

/* Defined by the daemon author. */
int wasmesh_handle(const wasmesh_event *ev);
#ifdef WASMESH_INIT
int wasmesh_on_init(const uint8_t *config, size_t len);
#endif
#ifdef WASMESH_COOPERATIVE
int wasmesh_on_snapshot(void);
int wasmesh_on_restore(const uint8_t *state, size_t len);
#endif

/* Host imports. */
#define WASMESH__IMPORT(name) __attribute__((import_module("wasmesh"), import_name(name)))
WASMESH__IMPORT("emit") void wasmesh__emit(const void *ptr, size_t len);
WASMESH__IMPORT("fail") void wasmesh__fail(const void *ptr, size_t len);
WASMESH__IMPORT("log") void wasmesh__log(int32_t level, const void *ptr, size_t len);
WASMESH__IMPORT("state_write") void wasmesh__state_write(const void *ptr, size_t len);
WASMESH__IMPORT("now") int64_t wasmesh__now(void);
WASMESH__IMPORT("random") void wasmesh__random(void *ptr, size_t len);
WASMESH__IMPORT("self") void wasmesh__self(void *ptr);
WASMESH__IMPORT("publish") int32_t wasmesh__publish(const void *ch, size_t chlen, const void *ptr, size_t len);
WASMESH__IMPORT("send") int32_t wasmesh__send(const void *target, const void *ptr, size_t len);

/* Length of a NUL-terminated string (no libc needed). */
static inline size_t wasmesh_strlen(const char *s) {
	size_t n = 0;
	while (s[n]) n++;
	return n;
}

/* Whether bytes p[0:n] equal the NUL-terminated string s. */
static inline int wasmesh_eq(const uint8_t *p, size_t n, const char *s) {
	size_t i;
	for (i = 0; i < n; i++) {
		if (s[i] == 0 || (uint8_t)s[i] != p[i]) return 0;
	}
	return s[n] == 0;
}

/* Emits one output payload. */
static inline void wasmesh_emit(const void *p, size_t n) { wasmesh__emit(p, n); }
static inline void wasmesh_emit_str(const char *s) { wasmesh__emit(s, wasmesh_strlen(s)); }

/* Sets the error message of the current call; returns 1 for `return`. */
static inline int wasmesh_fail(const char *msg) {
	wasmesh__fail(msg, wasmesh_strlen(msg));
	return 1;
}
static inline int wasmesh_failn(const void *msg, size_t n) {
	wasmesh__fail(msg, n);
	return 1;
}

static inline void wasmesh_log(int level, const char *msg) {
	wasmesh__log(level, msg, wasmesh_strlen(msg));
}
static inline void wasmesh_logn(int level, const void *msg, size_t n) {
	wasmesh__log(level, msg, n);
}

/* Appends to the state of a cooperative snapshot (only inside
 * wasmesh_on_snapshot). */
static inline void wasmesh_state_write(const void *p, size_t n) { wasmesh__state_write(p, n); }

/* Host time, unix nanoseconds; use it rather than a clock of your own so
 * replays see the same time. */
static inline int64_t wasmesh_now(void) { return wasmesh__now(); }

/* Fills p[0:n] with host randomness. */
static inline void wasmesh_random(void *p, size_t n) { wasmesh__random(p, n); }

/* Writes the daemon's 32-byte entity id to out. */
static inline void wasmesh_self(uint8_t out[32]) { wasmesh__self(out); }

/* Results of wasmesh_publish. */
#define WASMESH_PUBLISH_QUEUED 0            /* part of this event's effects; published once it commits */
#define WASMESH_PUBLISH_TOO_LARGE 1         /* payload over the host's per-message cap (1 MiB) */
#define WASMESH_PUBLISH_FULL 2              /* outbox (shared with send) full; retry in a later event */
#define WASMESH_PUBLISH_BAD_CHANNEL 3       /* not 1..255 bytes of '/'-separated [a-z0-9._-] segments */
#define WASMESH_PUBLISH_TOO_MANY_CHANNELS 4 /* already published to 256 distinct channels */

/* Publishes p[0:n] on the channel, exactly once and in order with this
 * daemon's other publishes there; a failed event publishes nothing.
 * Returns one of WASMESH_PUBLISH_*. */
static inline int wasmesh_publish(const char *channel, const void *p, size_t n) {
	return wasmesh__publish(channel, wasmesh_strlen(channel), p, n);
}

/* Results of wasmesh_send. */
#define WASMESH_SEND_QUEUED 0    /* part of this event's effects; delivered once it commits */
#define WASMESH_SEND_TOO_LARGE 1 /* payload over the host's per-message cap (1 MiB) */
#define WASMESH_SEND_FULL 2      /* outbox full (4096 messages or 8 MiB); retry in a later event */

/* Sends p[0:n] to the daemon with origin target (its 8-byte id): it
 * arrives there as an event with origin = this daemon's origin, exactly
 * once and in order, wherever either daemon lives. A failed event sends
 * nothing. */
static inline int wasmesh_send(uint64_t target, const void *p, size_t n) {
	uint8_t t[8];
	for (int i = 0; i < 8; i++) t[i] = (uint8_t)(target >> (8 * i));
	return wasmesh__send(t, p, n);
}

/* Writes v in decimal ASCII to buf (at least 20 bytes, not NUL-terminated)
 * and returns the length. */
static inline size_t wasmesh_fmt_u64(uint64_t v, char *buf) {
	char tmp[20];
	size_t n = 0, i;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
	return n;
}

/* wasmesh_alloc returns n bytes aligned to 16, or NULL when memory cannot
 * grow. Without libc it is a bump allocator over the heap wasm-ld leaves
 * after the data and stack: nothing is ever freed, so allocate at init or
 * once, not per event. */
void *wasmesh_alloc(size_t n);

#ifndef WASMESH_DECLARE_ONLY

#define WASMESH__EXPORT(name) __attribute__((export_name(name)))

#ifdef WASMESH_USE_BUMP
extern unsigned char __heap_base; /* provided by wasm-ld */
static uintptr_t wasmesh__top;

void *wasmesh_alloc(size_t n) {
	uint64_t p, end, have;
	if (wasmesh__top == 0) wasmesh__top = (uintptr_t)&__heap_base;
	p = ((uint64_t)wasmesh__top + 15) & ~(uint64_t)15;
	end = p + n;
	have = (uint64_t)__builtin_wasm_memory_size(0) << 16;
	if (end > have) {
		if (end > ((uint64_t)1 << 32)) return NULL;
		if (__builtin_wasm_memory_grow(0, (size_t)((end - have + 65535) >> 16)) == (size_t)-1)
			return NULL;
	}
	wasmesh__top = (uintptr_t)end;
	return (void *)(uintptr_t)p;
}
#else
void *wasmesh_alloc(size_t n) { return malloc(n); }
#endif

static uint8_t *wasmesh__in;
static size_t wasmesh__in_cap;

WASMESH__EXPORT("wasmesh_abi_v1") void wasmesh__abi_v1(void) {}

/* The buffer only grows: the host may reuse it for any later input no longer
 * than the last length it asked for, so it must not move in between. */
WASMESH__EXPORT("wasmesh_input") uint8_t *wasmesh__input(int32_t len) {
	size_t n = len < 0 ? 0 : (size_t)len;
	if (n <= wasmesh__in_cap && wasmesh__in) return wasmesh__in;
#ifdef WASMESH_USE_BUMP
	/* Still the newest allocation: grow it in place. */
	if (wasmesh__in && (uintptr_t)(wasmesh__in + wasmesh__in_cap) == wasmesh__top)
		wasmesh__top = (uintptr_t)wasmesh__in;
#else
	free(wasmesh__in);
#endif
	wasmesh__in = (uint8_t *)wasmesh_alloc(n ? n : 1);
	/* Handing the host a null pointer would let it overwrite address 0;
	 * trapping fails this input instead. */
	if (!wasmesh__in) __builtin_trap();
	wasmesh__in_cap = n;
	return wasmesh__in;
}

WASMESH__EXPORT("wasmesh_process")
int32_t wasmesh__process(int64_t origin, int64_t seq, const uint8_t *ptr, int32_t len) {
	wasmesh_event ev;
	ev.origin = (uint64_t)origin;
	ev.seq = (uint64_t)seq;
	ev.payload = ptr;
	ev.len = len < 0 ? 0 : (size_t)len;
	return wasmesh_handle(&ev);
}

#ifdef WASMESH_INIT
WASMESH__EXPORT("wasmesh_init")
int32_t wasmesh__init(const uint8_t *ptr, int32_t len) {
	return wasmesh_on_init(ptr, len < 0 ? 0 : (size_t)len);
}
#endif

#ifdef WASMESH_COOPERATIVE
WASMESH__EXPORT("wasmesh_snapshot") int32_t wasmesh__snapshot(void) { return wasmesh_on_snapshot(); }

WASMESH__EXPORT("wasmesh_restore")
int32_t wasmesh__restore(const uint8_t *ptr, int32_t len) {
	return wasmesh_on_restore(ptr, len < 0 ? 0 : (size_t)len);
}
#endif

#endif /* WASMESH_DECLARE_ONLY */

#ifdef __cplusplus
}
#endif

#endif /* WASMESH_H */
