package protocol

import (
	"fmt"
	"log/slog"
	"strings"
)

// Effects is a list of effects as log lines show it: each effect's name
// and the fields that say what it does. Payloads, snapshots and sealed
// keys are left out (a debug log must not carry a daemon's data), and the
// list is cut at maxLoggedEffects.
type Effects []Effect

const maxLoggedEffects = 16

// LogValue makes slog print the effects, not the slice's type.
func (es Effects) LogValue() slog.Value { return slog.StringValue(es.String()) }

func (es Effects) String() string {
	parts := make([]string, 0, min(len(es), maxLoggedEffects)+1)
	for i, e := range es {
		if i == maxLoggedEffects {
			parts = append(parts, fmt.Sprintf("…%d more", len(es)-i))
			break
		}
		parts = append(parts, effectString(e))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func effectString(e Effect) string {
	switch e := e.(type) {
	case Done:
		if e.Err != nil {
			return fmt.Sprintf("Done(err=%q)", e.Err.Error())
		}
		return "Done(ok)"
	case FreezeAndBuffer:
		return fmt.Sprintf("FreezeAndBuffer(origin=%016x)", e.Origin)
	case TakeSnapshot:
		return fmt.Sprintf("TakeSnapshot(attempt=%d seal=%t)", e.Attempt, e.Seal)
	case AllowModuleFetch:
		return fmt.Sprintf("AllowModuleFetch(peer=%s)", e.Peer)
	case FlipRoute:
		return fmt.Sprintf("FlipRoute(to=%s)", e.To)
	case ForwardEvent:
		return fmt.Sprintf("ForwardEvent(to=%s)", e.To)
	case ResumeLocal:
		return fmt.Sprintf("ResumeLocal(events=%d)", len(e.Events))
	case Admit:
		return fmt.Sprintf("Admit(source=%s identity=%t)", e.Source, e.TransportIdentity)
	case FetchModule:
		return fmt.Sprintf("FetchModule(from=%s attempt=%d)", e.From, e.Attempt)
	case RestoreSnapshot:
		return fmt.Sprintf("RestoreSnapshot(attempt=%d bytes=%d)", e.Attempt, len(e.Snapshot))
	case ApplyEvent:
		return "ApplyEvent"
	}
	// The rest carry at most an origin: the name says it all.
	name := fmt.Sprintf("%T", e)
	return name[strings.LastIndexByte(name, '.')+1:]
}
