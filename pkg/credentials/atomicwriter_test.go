package credentials

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// kubeletVolume updates a directory the way the kubelet's AtomicWriter updates a Secret volume
// (pkg/volume/util/atomic_writer.go): the payload goes into a new timestamped directory
// "..<timestamp>.<random>", a "..data_tmp" symlink to it is renamed over "..data", the visible files are
// symlinks "<key> -> ..data/<key>", and the previous timestamped directory is removed.
type kubeletVolume struct {
	t   *testing.T
	dir string
	gen string // current timestamped directory name
}

var generationSeq atomic.Int64

func newKubeletVolume(t *testing.T) *kubeletVolume {
	t.Helper()
	return &kubeletVolume{t: t, dir: t.TempDir()}
}

// write publishes data as the volume's new generation.
func (v *kubeletVolume) write(data map[string]string) {
	v.t.Helper()
	ts := time.Now().UTC().Format("2006_01_02_15_04_05.")
	gen, err := os.MkdirTemp(v.dir, fmt.Sprintf("..%s%d.", ts, generationSeq.Add(1)))
	if err != nil {
		v.t.Fatal(err)
	}
	for k, val := range data {
		if err := os.WriteFile(filepath.Join(gen, k), []byte(val), 0o644); err != nil {
			v.t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, dataLink)); err != nil {
		v.t.Fatal(err)
	}
	// The visible files: a symlink per key through ..data; keys gone from the payload lose theirs.
	entries, err := os.ReadDir(v.dir)
	if err != nil {
		v.t.Fatal(err)
	}
	for _, e := range entries {
		if name := e.Name(); name[0] != '.' {
			if _, ok := data[name]; !ok {
				_ = os.Remove(filepath.Join(v.dir, name))
			}
		}
	}
	for k := range data {
		link := filepath.Join(v.dir, k)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataLink, k), link); err != nil {
			v.t.Fatal(err)
		}
	}
	if v.gen != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, v.gen)); err != nil {
			v.t.Fatal(err)
		}
	}
	v.gen = filepath.Base(gen)
}

// appSecret is a ThingSpaceApp Secret's data.
func appSecret(token string, exp time.Time) map[string]string {
	return map[string]string{"access_token": token, "token_type": "Bearer", "expires_at": exp.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
}

// sessionSecret is an M2MSession Secret's data.
func sessionSecret(token, session string, exp time.Time) map[string]string {
	return map[string]string{"access_token": token, "session_token": session, "access_token_expires_at": exp.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
}
