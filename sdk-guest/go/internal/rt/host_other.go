//go:build !wasip1

package rt

import "bytes"

// Off wasm the host functions record into fake, so the dispatch logic is
// tested by an ordinary `go test` and the package type-checks everywhere
// (editors, go vet).
var fake struct {
	emits   [][]byte
	fails   []string
	logs    []string
	state   []byte
	now     int64
	self    [32]byte
	publish int32 // the result every publish gets
	pubs    []fakePub
	sends   []fakeSend
	send    int32 // the result every send gets
}

type fakeSend struct {
	target  uint64
	payload []byte
}

func emit(b []byte)            { fake.emits = append(fake.emits, bytes.Clone(b)) }
func fail(msg string)          { fake.fails = append(fake.fails, msg) }
func logMsg(l int32, m string) { fake.logs = append(fake.logs, m) }
func stateWrite(b []byte)      { fake.state = append(fake.state, b...) }
func now() int64               { return fake.now }
func random(b []byte)          { clear(b) }
func self() [32]byte           { return fake.self }
func publish(ch string, b []byte) int32 {
	if fake.publish == 0 {
		fake.pubs = append(fake.pubs, fakePub{ch, bytes.Clone(b)})
	}
	return fake.publish
}

type fakePub struct {
	channel string
	payload []byte
}

func send(target uint64, b []byte) int32 {
	if fake.send == 0 {
		fake.sends = append(fake.sends, fakeSend{target, bytes.Clone(b)})
	}
	return fake.send
}
