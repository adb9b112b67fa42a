package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"
)

const goSDKModule = "github.com/wasmesh/wasmesh/sdk-guest/go"

// projectName is what `new` accepts: a directory and Go module name that
// needs no quoting anywhere it is written.
var projectName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

func newCommand() *cli.Command {
	return &cli.Command{
		Name:      "new",
		Usage:     "scaffold a daemon project that builds outside this repository",
		ArgsUsage: "LANG NAME",
		Description: `Creates the directory NAME with a counter daemon in LANG (today: go), a
README with the exact build command and the packages to install, ready to
build anywhere. The Go guest SDK is not published as a module: the project's
go.mod points at a checkout of wasmesh with a replace directive. --sdk gives
the checkout (or its sdk-guest/go directory); without it, wasmesh uses the
checkout it was built from, or the one the current directory is in.

Examples:
   wasmesh new go hello
   wasmesh new go hello --sdk ~/src/wasmesh
   cd hello && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "sdk", Usage: "`PATH` of a wasmesh checkout or of its sdk-guest/go directory"},
			&cli.StringFlag{Name: "dir", Usage: "create the project in `DIR` instead of ./NAME"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2, "LANG and NAME"); err != nil {
				return err
			}
			lang, name := c.Args().Get(0), c.Args().Get(1)
			if !projectName.MatchString(name) {
				return fail(2, "new: NAME %q: want 1-64 characters from [a-z0-9-], starting with a letter", name)
			}
			if lang != "go" {
				return fail(2, "new: language %q is not scaffolded yet; want go (the rust, c, zig and assemblyscript SDKs are in sdk-guest/, see plugins/examples/ for their builds)", lang)
			}
			sdk, err := findGoSDK(c.String("sdk"))
			if err != nil {
				return err
			}
			dir := c.String("dir")
			if dir == "" {
				dir = name
			}
			if err := scaffoldGo(dir, name, sdk); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "created %s (Go daemon %s, SDK at %s)\nbuild:\n   cd %s && %s\n", dir, name, sdk, dir, goBuildCmd(name))
			return nil
		},
	}
}

func goBuildCmd(name string) string {
	return "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o " + name + ".wasm ."
}

// findGoSDK returns the absolute path of sdk-guest/go: from --sdk, else
// the checkout this binary was built from (known when it was built
// without -trimpath), else a checkout around the current directory.
func findGoSDK(flag string) (string, error) {
	if flag != "" {
		for _, cand := range []string{filepath.Join(flag, "sdk-guest", "go"), flag} {
			if isGoSDK(cand) {
				return filepath.Abs(cand)
			}
		}
		return "", fail(2, "new: --sdk %s: no %s there (give a wasmesh checkout or its sdk-guest/go)", flag, goSDKModule)
	}
	var roots []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		roots = append(roots, filepath.Join(filepath.Dir(file), "..", ".."))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			roots = append(roots, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, r := range roots {
		if cand := filepath.Join(r, "sdk-guest", "go"); isGoSDK(cand) {
			return filepath.Abs(cand)
		}
	}
	return "", fail(2, "new: cannot find the Go guest SDK (it is not published as a module); clone https://github.com/wasmesh/wasmesh and give --sdk PATH-OF-THE-CLONE")
}

func isGoSDK(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && strings.Contains(string(b), "module "+goSDKModule+"\n")
}

func scaffoldGo(dir, name, sdk string) error {
	if _, err := os.Stat(dir); err == nil {
		return fail(2, "new: %s already exists; pick another NAME or --dir", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(1, "new: %v", err)
	}
	files := map[string]string{
		"go.mod": fmt.Sprintf(`module %s

go 1.24

require %s v0.0.0

// The SDK is not published as a module: build against a checkout.
replace %s => %s
`, name, goSDKModule, goSDKModule, sdk),
		"main.go": fmt.Sprintf(`// Command %s is a wasmesh daemon that counts events. Every event adds one
// and emits the new count as decimal text; the payload "get" emits it
// unchanged. The count is an ordinary variable: the host snapshots the
// daemon's memory, so it survives restarts and migrations.
package main

import (
	"strconv"

	wasmesh "%s"
)

var count uint64

func init() { wasmesh.Handle(handle) }

func handle(ev wasmesh.Event) ([][]byte, error) {
	if string(ev.Payload) != "get" {
		count++
	}
	return [][]byte{strconv.AppendUint(nil, count, 10)}, nil
}

// main is never called: the module is a reactor (-buildmode=c-shared) the
// host calls per event.
func main() {}
`, name, goSDKModule),
		"README.md": fmt.Sprintf("# %s\n\nA wasmesh daemon in Go: counts events, emits the count.\n\n"+
			"## Toolchain\n\nGo 1.24 or newer (Debian/Ubuntu: `apt-get install golang-go`, or https://go.dev/dl/); nothing else.\n\n"+
			"## Build\n\n```sh\n%s\n```\n\n"+
			"go.mod points at the guest SDK in a wasmesh checkout (`replace` to %s):\n"+
			"edit that line if the checkout moves.\n\n"+
			"## Run\n\n```sh\nprintf 'a\\nb\\nget\\n' | wasmesh run %s.wasm       # locally: 1 2 2\n"+
			"wasmesh deploy %s.wasm --kind %s && wasmesh spawn %s   # on a node\n```\n",
			name, goBuildCmd(name), sdk, name, name, name, name),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(1, "new: %v", err)
	}
	for f, body := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
			return fail(1, "new: %v", err)
		}
	}
	return nil
}
