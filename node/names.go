package node

import (
	"fmt"

	"github.com/wasmesh/wasmesh/abi"
)

// NameMaxLen bounds daemon and kind names (and channel/group names when
// they come): they are echoed in tables, logs and errors.
const NameMaxLen = 64

// NameRule is the documented name alphabet, quoted in errors and --help.
const NameRule = "1-64 characters from [A-Za-z0-9._-], starting with a letter or digit"

// CheckName refuses a name outside NameRule. A restricted alphabet, not
// escaping, because names are printed by every tool an operator uses
// (terminals, log viewers, shells), most of which this project does not
// control: ESC, NUL and bidi overrides must never reach them.
func CheckName(what, name string) error {
	if len(name) == 0 || len(name) > NameMaxLen {
		return fmt.Errorf("%w: %s name %s must be %s", ErrBadRequest, what, abi.Echo(name), NameRule)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || i > 0 && (c == '.' || c == '_' || c == '-') {
			continue
		}
		return fmt.Errorf("%w: %s name %s must be %s", ErrBadRequest, what, abi.Echo(name), NameRule)
	}
	return nil
}
