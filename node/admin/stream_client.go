package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/wasmesh/wasmesh/node"
)

// ErrStreamBroken: a stream's response ended before its End line (the
// connection broke or the node went away): events without an answer may or
// may not have been applied.
var ErrStreamBroken = errors.New("event stream broken")

// LineOf is the stream line for payload: text when it is UTF-8, else
// base64; id is its client event id (0 without a client id), line the
// number its answer carries (0: its place in the request).
func LineOf(payload []byte, id uint64, line int) StreamLine {
	return wireLine(StreamLine{Payload: payload, EventID: EventID(id), Line: line})
}

// wireLine fills in l's Text or Base64 from its Payload.
func wireLine(l StreamLine) StreamLine {
	if l.Payload == nil {
		return l
	}
	payload := l.Payload
	l.Payload = nil
	if utf8.Valid(payload) {
		s := string(payload)
		l.Text = &s
	} else {
		s := base64.StdEncoding.EncodeToString(payload)
		l.Base64 = &s
	}
	return l
}

// SendStream sends the lines read from lines (batches, until it is closed)
// to daemon as one stream, exactly-once under client when that is set, and calls each
// with every event's answer, in order, as they come; more says whether
// further answers have already arrived (a caller that prints them may wait
// for those before it flushes). It returns the
// stream's End once every line was answered; an error from each stops the
// stream. A stream that breaks first returns ErrStreamBroken.
func (c *Client) SendStream(ctx context.Context, daemon, client string, lines <-chan []StreamLine, each func(a StreamAnswer, more bool) error) (StreamEnd, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		bw := bufio.NewWriterSize(pw, 32<<10)
		enc := json.NewEncoder(bw)
		var buf []byte
		var err error
		for err == nil {
			select {
			case batch, ok := <-lines:
				if !ok {
					if err = bw.Flush(); err == nil {
						_ = pw.Close()
					}
					return
				}
				for _, l := range batch {
					var fast bool
					if buf, fast = appendStreamLine(buf[:0], l); fast {
						buf = append(buf, '\n')
						_, err = bw.Write(buf)
					} else {
						err = enc.Encode(wireLine(l))
					}
					if err != nil {
						break
					}
				}
				if err == nil && len(lines) == 0 {
					// Nothing more ready: send what there is now, so an
					// interactive client gets its answers.
					err = bw.Flush()
				}
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		pw.CloseWithError(err)
	}()
	defer func() {
		cancel()
		_ = pr.CloseWithError(context.Canceled)
		<-wrote
	}()
	path := "/v1/daemons/" + ref(daemon) + "/events/stream"
	if client != "" {
		path += "?client=" + url.QueryEscape(client)
	}
	resp, err := c.do(ctx, http.MethodPost, path, pr, StreamContentType)
	if err != nil {
		return StreamEnd{}, err
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var long []byte
	var names answerNames
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An answer longer than the buffer: gather it.
			long = append(long, line...)
			continue
		}
		if long != nil {
			line, long = append(long, line...), nil
		}
		if err != nil && (err != io.EOF || len(bytes.TrimSpace(line)) == 0) {
			if ctx.Err() != nil {
				return StreamEnd{}, ctx.Err()
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return StreamEnd{}, fmt.Errorf("%w: %s: %v", ErrStreamBroken, c.Base, rootCause(err))
		}
		a, ok := names.fastAnswer(line)
		if !ok {
			// Its own variable: taking a's address would move a to the
			// heap for every answer, not only for this rare one.
			var ja StreamAnswer
			if jerr := json.Unmarshal(line, &ja); jerr != nil {
				return StreamEnd{}, fmt.Errorf("%w: %s: bad answer: %v", ErrStreamBroken, c.Base, jerr)
			}
			a = ja
		}
		if a.End != nil {
			return *a.End, nil
		}
		if err := each(a, br.Buffered() > 0); err != nil {
			return StreamEnd{}, err
		}
	}
}

// Err is the answer's error as an *APIError (nil for a delivery).
func (a StreamAnswer) Err() error {
	if a.Error == "" && a.Code == "" {
		return nil
	}
	status := http.StatusInternalServerError
	if c, ok := classByCode(a.Code); ok {
		status = c
	}
	return apiError(status, Error{Message: a.Error, Code: a.Code})
}

// classByCode is the HTTP status of an error code in the node's table.
func classByCode(code string) (int, bool) {
	c, ok := node.ClassByCode(code)
	return c.HTTP, ok
}
