package sim

import (
	"strings"
	"testing"
)

// TestSimRegressions replays shrunk histories of bugs the simulator found;
// each failed before its fix.
func TestSimRegressions(t *testing.T) {
	module := echoModule(t)
	cases := []struct {
		name  string
		seed  int64
		steps []step
	}{
		// A client retries while its daemon is frozen on the source; the
		// migration times out and ResumeLocal applied every buffered copy,
		// because it dropped the events' exactly-once flag
		// (migrator/run.go resumeLocal).
		{"resume-keeps-once", 58, []step{{stMigrate, 1027414135, 1601471994, 3587626168}, {stSend, 1452408026, 1774525547, 2287698537}, {stJump, 1139696724, 193403887, 929975803}}},
		// A client retries against the restored, not yet live copy on the
		// target; going live applied every held copy: the target's
		// interceptor and machine dropped the flag (migrator/run.go
		// targetInterceptor, migration/target.go hold).
		{"held-keeps-once", 80, []step{{stMigrate, 4265701305, 2797233631, 664067832}, {stDeliver, 3854327654, 3920999154, 3128017176}, {stDeliver, 1322534233, 3655148946, 3994385681}, {stPartition, 3092125044, 2484257790, 1937821215}, {stRestore, 407164109, 2813590327, 1917192130}, {stTick, 4271021611, 2213764177, 2318648676}, {stSend, 1968872372, 1293121181, 512688033}}},
	}
	for _, c := range cases {
		res := runSim(t, c.seed, defaultCluster, module, c.steps)
		if res.failed() {
			t.Errorf("%s: %s\n%s", c.name, res.failure, strings.Join(res.trace, "\n"))
		}
		if !strings.Contains(strings.Join(res.trace, "\n"), "ack ") {
			t.Errorf("%s: no event was acknowledged; the history no longer reaches the bug", c.name)
		}
	}
}
