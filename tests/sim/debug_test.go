package sim

import (
	"fmt"
	"strings"
)

func (s *sim) dumpNet() string {
	var b strings.Builder
	for _, l := range s.net.busy() {
		fmt.Fprintf(&b, " n%d→n%d[", l.from, l.to)
		for _, m := range s.net.links[l] {
			fmt.Fprintf(&b, "%s ", s.msgName(m))
		}
		b.WriteString("]")
	}
	return b.String()
}
