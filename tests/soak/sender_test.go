//go:build soak

package soak

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sender streams events to a daemon with `wasmesh send DAEMON --stdin
// --client-id`, one at a time, and accounts for each: acknowledged (its
// output came back, or a resend was answered "already applied"), failed
// (the CLI printed "error: event N"), or in flight when the CLI died (e.g.
// its node was killed). When the CLI dies it is started again through
// another node and resends from the first unacknowledged event id, so
// every event ends up applied exactly once: the count must equal acked.
type sender struct {
	daemon string
	via    func() string // admin URL of a node believed alive

	mu       sync.Mutex
	acked    int
	dups     int    // resends answered "already applied" (counted in acked)
	next     uint64 // client event id of the next event to send
	failed   int
	unknown  int
	highest  int // largest count an acknowledgement reported
	restarts int
	reasons  map[string]int
	stop     chan struct{}
	done     chan struct{}
}

func newSender(daemon string, via func() string) *sender {
	s := &sender{daemon: daemon, via: via, next: 1, reasons: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

type line struct {
	err  bool
	text string
}

func (s *sender) run() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		if s.session() {
			return
		}
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
	}
}

// session runs one CLI process; it reports whether the sender was stopped.
func (s *sender) session() (stopped bool) {
	s.mu.Lock()
	first := s.next
	s.mu.Unlock()
	cmd := exec.Command(binPath(), "send", s.daemon, "--stdin", "--client-id", "soak-sender",
		"--first-event-id", strconv.FormatUint(first, 10), "--retry-for", "20s", "--node", s.via())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		s.note("start: " + err.Error())
		return false
	}
	lines := make(chan line, 16)
	var wg sync.WaitGroup
	scan := func(r io.Reader, isErr bool) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- line{isErr, sc.Text()}
		}
	}
	wg.Add(2)
	go scan(stdout, false)
	go scan(stderr, true)
	go func() { wg.Wait(); close(lines) }()
	defer func() {
		stdin.Close()
		timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
		for range lines {
		}
		_ = cmd.Wait()
		timer.Stop()
	}()
	for {
		select {
		case <-s.stop:
			return true
		default:
		}
		if _, err := io.WriteString(stdin, "x\n"); err != nil {
			s.mu.Lock()
			s.unknown++ // the write may have reached it before it died
			s.mu.Unlock()
			return false
		}
		if !s.await(lines, cmd) {
			return false
		}
	}
}

// await waits for the reply to the event in flight.
func (s *sender) await(lines <-chan line, cmd *exec.Cmd) bool {
	timeout := time.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	for {
		select {
		case l, open := <-lines:
			s.mu.Lock()
			switch {
			case !open:
				s.unknown++
				s.mu.Unlock()
				return false
			case !l.err:
				n, err := strconv.Atoi(strings.TrimSpace(l.text))
				if err != nil {
					s.mu.Unlock()
					s.note("unexpected output " + l.text)
					continue
				}
				s.acked++
				s.next++
				s.highest = max(s.highest, n)
				s.mu.Unlock()
				return true
			case strings.Contains(l.text, "already applied"):
				s.acked++
				s.dups++
				s.next++
				s.mu.Unlock()
				return true
			case strings.HasPrefix(l.text, "error: event"):
				// Its fate is unknown (the CLI gave up resending it): stop
				// this session and resend the same event id from a new one.
				// The counter never fails an event, so this cannot loop.
				s.unknown++
				s.mu.Unlock()
				s.note(reasonOf(l.text))
				_ = cmd.Process.Kill()
				return false
			default:
				// The CLI is exiting ("wasmesh: ..."): the event in flight
				// has no answer.
				s.mu.Unlock()
				s.note(reasonOf(l.text))
			}
		case <-timeout.C:
			_ = cmd.Process.Kill()
			s.note("no reply in 2m")
		}
	}
}

func reasonOf(s string) string {
	if i := strings.Index(s, ": "); i >= 0 && strings.HasPrefix(s, "error: event") {
		s = s[i+2:]
		if j := strings.Index(s, ": "); j >= 0 {
			s = s[j+2:]
		}
	}
	s = addrRE.ReplaceAllString(s, "ADDR")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// addrRE makes reasons comparable across restarted nodes' ports.
var addrRE = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

func (s *sender) note(reason string) {
	s.mu.Lock()
	s.reasons[reason]++
	s.mu.Unlock()
}

// halt stops the sender after the event in flight is answered.
func (s *sender) halt() {
	close(s.stop)
	<-s.done
}

func (s *sender) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("acked %d (%d as already applied), failed %d, answers lost %d, highest count acknowledged %d, CLI restarts %d, reasons %v",
		s.acked, s.dups, s.failed, s.unknown, s.highest, s.restarts, s.reasons)
}
