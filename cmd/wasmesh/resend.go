package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/node/admin"
)

// resender sends a stream of events to one daemon, resending an event only
// when the node says it was not delivered: the daemon was not found (the
// moment a migration hands it over) after this stream already reached it.
// Any other failure may have left the event applied, so it is never resent.
type resender struct {
	cl       *admin.Client
	daemon   string
	retryFor time.Duration
	reached  bool // some event of this stream got to the daemon
	// client, when set, makes every event exactly-once under the client
	// event id next (then next+1, ...): any event whose answer was lost can
	// be resent, because the daemon answers a resend it applied as a
	// duplicate instead of applying it again.
	client string
	next   uint64
}

func (r *resender) send(ctx context.Context, p []byte) (admin.SendResponse, error) {
	var deadline time.Time
	wait := 10 * time.Millisecond
	id := r.next
	if r.client != "" {
		r.next++
	}
	for {
		var res admin.SendResponse
		var err error
		if r.client != "" {
			res, err = r.cl.SendOnce(ctx, r.daemon, r.client, id, p)
		} else {
			res, err = r.cl.Send(ctx, r.daemon, p)
		}
		if err == nil {
			r.reached = true
			return res, nil
		}
		// A daemon never reached is a typo or a stopped daemon: fail at
		// once instead of waiting out the retry window.
		if !r.reached || !(notDelivered(err) || r.client != "" && resendable(err)) {
			return res, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(r.retryFor)
		}
		if !time.Now().Before(deadline) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// notDelivered reports whether an error says the event surely did not reach
// the daemon, so that sending it again cannot apply it twice.
func notDelivered(err error) bool {
	var ae *admin.APIError
	if !errors.As(err, &ae) {
		return false
	}
	// For a send, "not found" means no node ran the event: the daemon was
	// not where the node looked, or it had stopped before the event began.
	if ae.Code == admin.CodeNotFound {
		return true
	}
	return strings.Contains(ae.Message, "migrator: not delivered")
}

// resendable reports whether an exactly-once event may be sent again after
// err: anything but an answer about the event itself (the guest failed it:
// it was rolled back) or a refusal of the input. Nodes that do not answer,
// restart, or lose the answer are exactly what client event ids are for.
func resendable(err error) bool {
	var ae *admin.APIError
	if !errors.As(err, &ae) {
		return ctxErr(err) == nil // transport: the node is down or restarting
	}
	switch ae.Code {
	case admin.CodeEventFailed, admin.CodeBadRequest, admin.CodeRefused:
		return false
	}
	return ae.Status >= 500 || ae.Code == admin.CodeNotFound
}

func ctxErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// eventOnly reports whether a send failure concerns that one event (the
// stream goes on): the event failed in the daemon, or its fate is unknown
// (it may have been applied; the error says why), as opposed to a refusal
// of the whole command (bad input, unknown daemon, no node to talk to).
func eventOnly(err error) bool {
	var ae *admin.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.Code {
	case admin.CodeEventFailed, admin.CodeInternal, admin.CodeUnavailable, admin.CodeMigration:
		return true
	}
	return false
}
