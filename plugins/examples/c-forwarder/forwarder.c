/* forwarder: a counter that sends "fwd <count>" to a peer daemon on every
 * tenth count. "peer <16 hex digits>" sets the peer (no output, not
 * counted), "get" emits the count, anything else adds one and emits it.
 * A forward the host does not queue fails the event naming the send code;
 * the count moves only once the message is queued. Both statics are
 * carried by the host's transparent snapshots. */
#include "wasmesh.h"

static uint64_t count;
static uint64_t peer; /* 0 until set: origin 0 is the anonymous client */

static const char usage[] = "usage: peer <16 hex digits, not all zero>";

static int set_peer(const uint8_t *p, size_t n) {
	uint64_t o = 0;
	size_t i;
	if (n != 5 + 16) return wasmesh_fail(usage);
	for (i = 5; i < n; i++) {
		uint8_t c = p[i], d;
		if (c >= '0' && c <= '9') d = c - '0';
		else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
		else return wasmesh_fail(usage);
		o = o << 4 | d;
	}
	if (o == 0) return wasmesh_fail(usage);
	peer = o;
	return 0;
}

static size_t put(char *dst, const char *s) {
	size_t n = wasmesh_strlen(s), i;
	for (i = 0; i < n; i++) dst[i] = s[i];
	return n;
}

int wasmesh_handle(const wasmesh_event *ev) {
	char buf[20], msg[96];
	uint64_t next;
	size_t n;
	int32_t rc;

	if (wasmesh_eq(ev->payload, ev->len, "get")) {
		wasmesh_emit(buf, wasmesh_fmt_u64(count, buf));
		return 0;
	}
	if (wasmesh_eq(ev->payload, ev->len, "peer") ||
	    (ev->len >= 5 && wasmesh_eq(ev->payload, 5, "peer ")))
		return set_peer(ev->payload, ev->len);

	next = count + 1;
	if (next % 10 == 0) {
		char fwd[4 + 20];
		size_t fn = put(fwd, "fwd ");
		fn += wasmesh_fmt_u64(next, fwd + fn);
		for (n = 0; n < fn; n++) msg[n] = fwd[n];
		n += put(msg + n, " not sent: ");
		if (peer == 0) {
			n += put(msg + n, "no peer (send \"peer <16 hex digits>\" first)");
			return wasmesh_failn(msg, n);
		}
		rc = wasmesh_send(peer, fwd, fn);
		if (rc != WASMESH_SEND_QUEUED) {
			n += put(msg + n, "send code ");
			if (rc < 0) {
				msg[n++] = '-';
				n += wasmesh_fmt_u64((uint64_t)(-(int64_t)rc), msg + n);
			} else {
				n += wasmesh_fmt_u64((uint64_t)rc, msg + n);
			}
			if (rc == WASMESH_SEND_TOO_LARGE) n += put(msg + n, " (too large)");
			else if (rc == WASMESH_SEND_FULL) n += put(msg + n, " (outbox full)");
			return wasmesh_failn(msg, n);
		}
	}
	count = next;
	wasmesh_emit(buf, wasmesh_fmt_u64(count, buf));
	return 0;
}
