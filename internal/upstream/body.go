package upstream

import (
	"errors"
	"io"
)

// DefaultBodyLimit is the largest response body read when no limit is given. Every response of
// these APIs is a small JSON document; anything larger is a proxy error page or an attack.
const DefaultBodyLimit int64 = 64 << 10

// ErrBodyTooLarge is returned by ReadBody when the body exceeds the limit.
var ErrBodyTooLarge = errors.New("response body exceeds limit")

// ReadBody reads all of r up to limit bytes (limit <= 0 means DefaultBodyLimit). A body longer
// than limit returns ErrBodyTooLarge and no data: a truncated document must never be parsed.
func ReadBody(r io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, ErrBodyTooLarge
	}
	return b, nil
}

// DrainAndClose discards a bounded amount of what is left of body, so the connection can be
// reused, and closes it. Bounded: draining a huge body costs more than a new connection.
func DrainAndClose(body io.ReadCloser) {
	if body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, DefaultBodyLimit))
	_ = body.Close()
}
