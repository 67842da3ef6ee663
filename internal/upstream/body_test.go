package upstream

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadBody(t *testing.T) {
	readErr := errors.New("boom")
	tests := []struct {
		name    string
		r       io.Reader
		limit   int64
		want    int
		wantErr error
	}{
		{name: "under limit", r: strings.NewReader("hello"), limit: 10, want: 5},
		{name: "exactly limit", r: strings.NewReader("0123456789"), limit: 10, want: 10},
		{name: "one over limit", r: strings.NewReader("0123456789a"), limit: 10, wantErr: ErrBodyTooLarge},
		{name: "empty", r: strings.NewReader(""), limit: 10, want: 0},
		{name: "default limit fits", r: strings.NewReader(strings.Repeat("x", int(DefaultBodyLimit))), want: int(DefaultBodyLimit)},
		{name: "default limit exceeded", r: strings.NewReader(strings.Repeat("x", int(DefaultBodyLimit)+1)), wantErr: ErrBodyTooLarge},
		{name: "negative means default", r: strings.NewReader(strings.Repeat("x", int(DefaultBodyLimit)+1)), limit: -1, wantErr: ErrBodyTooLarge},
		{name: "reader error", r: io.MultiReader(strings.NewReader("ab"), errReader{readErr}), limit: 10, wantErr: readErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadBody(tt.r, tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if got != nil {
					t.Errorf("returned %d bytes with an error; a partial body must not be used", len(got))
				}
				return
			}
			if len(got) != tt.want {
				t.Errorf("read %d bytes, want %d", len(got), tt.want)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type countingBody struct {
	n      int64
	read   int64
	closed bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.read >= b.n {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.n-b.read)
	b.read += n
	return int(n), nil
}

func (b *countingBody) Close() error { b.closed = true; return nil }

func TestDrainAndClose(t *testing.T) {
	small := &countingBody{n: 100}
	DrainAndClose(small)
	if !small.closed || small.read != 100 {
		t.Errorf("small body: closed=%v read=%d", small.closed, small.read)
	}
	huge := &countingBody{n: 1 << 30}
	DrainAndClose(huge)
	if !huge.closed || huge.read > DefaultBodyLimit {
		t.Errorf("huge body: closed=%v read=%d, drain must be bounded", huge.closed, huge.read)
	}
	DrainAndClose(nil) // must not panic
}
