package abi

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The WASI list in README.md is what WASISignature allows, no more, no less:
// a guest author reads the list, the host enforces the function.
func TestWASIListInREADME(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n## WASI\n")
	if start < 0 {
		t.Fatal("README.md has no WASI section")
	}
	sec := doc[start+1:]
	if end := strings.Index(sec, "\n\n"+"The host provides WASI"); end > 0 {
		sec = sec[:end]
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(sec, -1) {
		listed[m[1]] = true
	}
	for name := range listed {
		if _, ok := WASISignature(name); !ok && name != WASIModule {
			t.Errorf("README lists %s, which the host refuses", name)
		}
	}
	for _, name := range []string{"args_get", "args_sizes_get", "environ_get", "environ_sizes_get", "clock_time_get",
		"clock_res_get", "fd_write", "fd_read", "fd_close", "fd_sync", "fd_datasync", "fd_fdstat_get",
		"fd_fdstat_set_flags", "fd_prestat_get", "fd_prestat_dir_name", "fd_seek", "proc_exit", "random_get",
		"sched_yield", "poll_oneoff"} {
		if _, ok := WASISignature(name); !ok {
			t.Errorf("%s no longer allowed: update this list and README.md", name)
		}
		if !listed[name] {
			t.Errorf("README's WASI list omits %s", name)
		}
	}
	if _, ok := WASISignature("path_open"); ok {
		t.Error("path_open allowed")
	}
}
