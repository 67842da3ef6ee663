package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// staticBin is a tiny static Go program built once for all tests (the real manager takes minutes).
var staticBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "image-test-")
	if err != nil {
		panic(err)
	}
	staticBin = filepath.Join(dir, "hello")
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644); err != nil {
		panic(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", staticBin, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		panic("build the test binary: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

var testEpoch = time.Unix(1764547200, 0).UTC()

func testSpec(t *testing.T) Spec {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte(testCA), 0o644); err != nil {
		t.Fatal(err)
	}
	return Spec{
		Binary: staticBin, Entrypoint: "/manager", Tag: "thingspace-operator:dev", CACerts: ca,
		Epoch: testEpoch, Source: "https://github.com/credops/thingspace-operator", Version: "v1.2.3",
		Revision: "0123abcd", Labels: map[string]string{"extra": "yes"},
	}
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestDeterministic(t *testing.T) {
	spec := testSpec(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	sa, err := Write(spec, a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Write(spec, b)
	if err != nil {
		t.Fatal(err)
	}
	if sa != sb {
		t.Errorf("two builds of the same inputs differ:\n%+v\n%+v", sa, sb)
	}
	if fileSum(t, a) != fileSum(t, b) {
		t.Error("two builds of the same inputs wrote different tarballs")
	}

	// The digests do follow the inputs: another epoch, another image.
	spec.Epoch = spec.Epoch.Add(time.Second)
	sc, err := Write(spec, filepath.Join(dir, "c.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if sc.ConfigDigest == sa.ConfigDigest || sc.ManifestDigest == sa.ManifestDigest {
		t.Errorf("another epoch gave the same digests %s / %s", sc.ConfigDigest, sc.ManifestDigest)
	}
}

// archive is what a docker-archive tarball holds.
type archive struct {
	manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	files map[string][]byte
}

func readArchive(t *testing.T, p string) archive {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := archive{files: map[string][]byte{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		a.files[h.Name] = b
	}
	if err := json.Unmarshal(a.files["manifest.json"], &a.manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	return a
}

func TestArchiveManifestAndConfig(t *testing.T) {
	spec := testSpec(t)
	out := filepath.Join(t.TempDir(), "img.tar")
	sum, err := Write(spec, out)
	if err != nil {
		t.Fatal(err)
	}
	a := readArchive(t, out)
	if len(a.manifest) != 1 || len(a.manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json: want one image with one layer, got %+v", a.manifest)
	}
	m := a.manifest[0]
	if !reflect.DeepEqual(m.RepoTags, []string{"thingspace-operator:dev"}) {
		t.Errorf("RepoTags %q", m.RepoTags)
	}
	if m.Config != sum.ConfigDigest.String() {
		t.Errorf("config %s, summary says %s", m.Config, sum.ConfigDigest)
	}
	var cfg struct {
		Architecture, OS string
		Created          time.Time
		Config           struct {
			User, WorkingDir string
			Entrypoint, Cmd  []string
			Labels           map[string]string
		}
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(a.files[m.Config], &cfg); err != nil {
		t.Fatalf("config %s: %v", m.Config, err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if !cfg.Created.Equal(testEpoch) {
		t.Errorf("created %s, want %s", cfg.Created, testEpoch)
	}
	c := cfg.Config
	if c.User != "65532:65532" || c.WorkingDir != "/" || !reflect.DeepEqual(c.Entrypoint, []string{"/manager"}) || c.Cmd != nil {
		t.Errorf("config %+v", c)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.source":   spec.Source,
		"org.opencontainers.image.version":  spec.Version,
		"org.opencontainers.image.revision": spec.Revision,
		"extra":                             "yes",
	}
	if !reflect.DeepEqual(c.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", c.Labels, wantLabels)
	}

	layer, ok := a.files[m.Layers[0]]
	if !ok {
		t.Fatalf("layer %s missing from the tarball", m.Layers[0])
	}
	checkLayer(t, layer, spec)
	if len(cfg.RootFS.DiffIDs) != 1 {
		t.Errorf("diff_ids %v", cfg.RootFS.DiffIDs)
	}
}

// checkLayer compares the layer with the exact list of entries the image should have: anything
// else (a shell, a stray file) or a wrong mode, owner or mtime fails.
func checkLayer(t *testing.T, gz []byte, spec Spec) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("layer is not gzip: %v", err)
	}
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		typ      byte
		mode     int64
		uid, gid int
		data     []byte
	}
	dir := func(mode int64, id int) want { return want{typ: tar.TypeDir, mode: mode, uid: id, gid: id} }
	file := func(mode int64, data string) want { return want{typ: tar.TypeReg, mode: mode, data: []byte(data)} }
	wants := map[string]want{
		"etc/":                              dir(0o755, 0),
		"etc/group":                         file(0o644, "root:x:0:\nnonroot:x:65532:\n"),
		"etc/passwd":                        file(0o644, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
		"etc/ssl/":                          dir(0o755, 0),
		"etc/ssl/certs/":                    dir(0o755, 0),
		"etc/ssl/certs/ca-certificates.crt": file(0o644, testCA),
		"home/":                             dir(0o755, 0),
		"home/nonroot/":                     dir(0o700, Nonroot),
		"manager":                           file(0o755, string(bin)),
		"tmp/":                              dir(0o1777, 0),
	}
	var names []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		w, ok := wants[h.Name]
		if !ok {
			t.Errorf("unexpected layer entry %s", h.Name)
			continue
		}
		data, _ := io.ReadAll(tr)
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid {
			t.Errorf("%s: type %c mode %o owner %d:%d, want type %c mode %o owner %d:%d",
				h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, w.typ, w.mode, w.uid, w.gid)
		}
		if !bytes.Equal(data, w.data) {
			t.Errorf("%s: content differs (%d bytes, want %d)", h.Name, len(data), len(w.data))
		}
		if !h.ModTime.Equal(spec.Epoch) {
			t.Errorf("%s: mtime %s, want %s", h.Name, h.ModTime, spec.Epoch)
		}
		if strings.HasSuffix(h.Name, "sh") || strings.HasPrefix(h.Name, "bin/") {
			t.Errorf("a shell in the layer: %s", h.Name)
		}
	}
	if len(names) != len(wants) {
		t.Errorf("layer entries %q, want the %d of %v", names, len(wants), wants)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("layer entries not sorted: %q before %q", names[i-1], names[i])
		}
	}
}

// TestRepoTagResolves checks that the tag the kubelet names (thingspace-operator:dev, which
// containerd normalises to docker.io/library/thingspace-operator:dev) finds the image in the tarball,
// under every spelling of the same reference.
func TestRepoTagResolves(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img.tar")
	sum, err := Write(testSpec(t), out)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"thingspace-operator:dev", "docker.io/library/thingspace-operator:dev", "library/thingspace-operator:dev"} {
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := tarball.ImageFromPath(out, &tag)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if d, _ := img.ConfigName(); d != sum.ConfigDigest {
			t.Errorf("%s: image %s, want %s", ref, d, sum.ConfigDigest)
		}
	}
	other, _ := name.NewTag("thingspace-operator:other")
	if _, err := tarball.ImageFromPath(out, &other); err == nil {
		t.Error("tag thingspace-operator:other found in a tarball that does not hold it")
	}
}

func TestRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"missing CA bundle", func(s *Spec) { s.CACerts = "/nonexistent/ca.crt" }, "apt-get install ca-certificates"},
		{"CA bundle without certificates", func(s *Spec) { s.CACerts = s.Binary }, "no PEM certificate"},
		{"not ELF", func(s *Spec) { s.Binary = s.CACerts }, "not a Linux executable"},
		{"relative entrypoint", func(s *Spec) { s.Entrypoint = "manager" }, "clean absolute"},
		{"entrypoint over /etc/passwd", func(s *Spec) { s.Entrypoint = "/etc/passwd" }, "collides"},
		{"entrypoint in /tmp", func(s *Spec) { s.Entrypoint = "/tmp/manager" }, "collides"},
		{"entrypoint over /etc", func(s *Spec) { s.Entrypoint = "/etc" }, "collides"},
		{"bad tag", func(s *Spec) { s.Tag = "Not A Tag" }, "tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t)
			tc.edit(&spec)
			out := filepath.Join(t.TempDir(), "img.tar")
			_, err := Write(spec, out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one that says %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed build left %s", out)
			}
		})
	}
}

func TestRejectsDynamicBinary(t *testing.T) {
	// Debian's coreutils are dynamically linked against libc.
	const dyn = "/usr/bin/true"
	if _, err := os.Stat(dyn); err != nil {
		t.Skipf("%s: %v", dyn, err)
	}
	spec := testSpec(t)
	spec.Binary = dyn
	if _, _, err := Build(spec); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("error %v, want one that asks for CGO_ENABLED=0", err)
	}
}

func TestRunFlags(t *testing.T) {
	spec := testSpec(t)
	out := filepath.Join(t.TempDir(), "img.tar")
	if err := run([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	if err := run([]string{"--binary", spec.Binary, "--out", out}); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("without --tag: %v", err)
	}
	if err := run([]string{"--binary", spec.Binary, "--tag", "x:y", "--out", out, "--epoch", "yesterday"}); err == nil {
		t.Error("--epoch yesterday accepted")
	}
	if err := run([]string{"--binary", spec.Binary, "--tag", "x:y", "--out", out, "--label", "novalue"}); err == nil {
		t.Error("--label without = accepted")
	}
	// The entrypoint defaults to /<base name>; SOURCE_DATE_EPOCH is the default epoch.
	t.Setenv("SOURCE_DATE_EPOCH", "86400")
	if err := run([]string{"--binary", spec.Binary, "--tag", "thingspace-sim:dev", "--out", out, "--ca-certs", spec.CACerts, "--label", "a=b=c"}); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("thingspace-sim:dev")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Config.Entrypoint, []string{"/hello"}) || cfg.Config.Labels["a"] != "b=c" || !cfg.Created.Equal(time.Unix(86400, 0)) {
		t.Errorf("entrypoint %q, labels %v, created %s", cfg.Config.Entrypoint, cfg.Config.Labels, cfg.Created)
	}
}
