package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultCACerts is where Debian's ca-certificates package keeps the bundle; Go's crypto/x509 reads
// the same path inside the image.
const DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

// Nonroot is the uid and gid the image runs as (the distroless convention, so runAsNonRoot holds).
const Nonroot = 65532

// Spec describes one image.
type Spec struct {
	Binary     string // host path of the static binary
	Entrypoint string // its path in the image; default /<base name>
	Tag        string // reference written into RepoTags
	CACerts    string // host path of the CA bundle
	Epoch      time.Time
	Source     string
	Version    string
	Revision   string
	Labels     map[string]string
}

// Summary is what Write reports about the image it wrote.
type Summary struct {
	Platform          string
	ConfigDigest      v1.Hash // the image ID that docker, crictl and ctr show
	ManifestDigest    v1.Hash
	LayerCompressed   int64
	LayerUncompressed int64
	TarballSize       int64
}

// Write builds the image and writes it as a docker-archive tarball to out, atomically (a reader
// never sees half a file under that name).
func Write(spec Spec, out string) (Summary, error) {
	ref, err := name.NewTag(spec.Tag)
	if err != nil {
		return Summary{}, fmt.Errorf("tag %q: %w", spec.Tag, err)
	}
	img, sum, err := Build(spec)
	if err != nil {
		return Summary{}, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return Summary{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return Summary{}, err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := tarball.Write(ref, img, tmp); err != nil {
		tmp.Close()
		return Summary{}, fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return Summary{}, err
	}
	// CreateTemp makes 0600 files; an image tarball is not secret.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return Summary{}, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return Summary{}, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return Summary{}, err
	}
	sum.TarballSize = st.Size()
	return sum, nil
}

// Build assembles the image in memory.
func Build(spec Spec) (v1.Image, Summary, error) {
	var sum Summary
	if spec.Entrypoint == "" {
		spec.Entrypoint = "/" + filepath.Base(spec.Binary)
	}
	if !path.IsAbs(spec.Entrypoint) || path.Clean(spec.Entrypoint) != spec.Entrypoint || spec.Entrypoint == "/" {
		return nil, sum, fmt.Errorf("entrypoint %q: want a clean absolute file path, such as /manager", spec.Entrypoint)
	}
	arch, err := staticLinuxArch(spec.Binary)
	if err != nil {
		return nil, sum, err
	}
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, sum, err
	}
	ca, err := readCACerts(spec.CACerts)
	if err != nil {
		return nil, sum, err
	}
	files := baseFiles(ca)
	rel := strings.TrimPrefix(spec.Entrypoint, "/")
	for _, f := range files {
		if f.name == rel || strings.HasPrefix(rel, f.name+"/") || strings.HasPrefix(f.name, rel+"/") {
			return nil, sum, fmt.Errorf("entrypoint %q collides with the image's %s", spec.Entrypoint, "/"+f.name)
		}
	}
	files = append(files, entry{name: rel, mode: 0o755, data: bin})

	layerTar, err := layerTarball(files, spec.Epoch)
	if err != nil {
		return nil, sum, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressedCaching)
	if err != nil {
		return nil, sum, err
	}

	created := v1.Time{Time: spec.Epoch}
	cfg := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      created,
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", Nonroot, Nonroot),
			Entrypoint: []string{spec.Entrypoint},
			WorkingDir: "/",
			Labels:     labels(spec),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, sum, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "hack/image: " + spec.Entrypoint + ", CA certificates, /etc/passwd and /etc/group (nonroot 65532), /tmp",
		},
	})
	if err != nil {
		return nil, sum, err
	}

	sum.Platform = "linux/" + arch
	if sum.ConfigDigest, err = img.ConfigName(); err != nil {
		return nil, sum, err
	}
	if sum.ManifestDigest, err = img.Digest(); err != nil {
		return nil, sum, err
	}
	if sum.LayerCompressed, err = layer.Size(); err != nil {
		return nil, sum, err
	}
	sum.LayerUncompressed = int64(len(layerTar))
	return img, sum, nil
}

// labels merges the OCI annotation labels with the extra ones (the extra ones win).
func labels(spec Spec) map[string]string {
	l := map[string]string{}
	for k, v := range map[string]string{
		"org.opencontainers.image.source":   spec.Source,
		"org.opencontainers.image.version":  spec.Version,
		"org.opencontainers.image.revision": spec.Revision,
	} {
		if v != "" {
			l[k] = v
		}
	}
	for k, v := range spec.Labels {
		l[k] = v
	}
	if len(l) == 0 {
		return nil
	}
	return l
}

func readCACerts(p string) ([]byte, error) {
	ca, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("CA bundle %s not found: install Debian's ca-certificates (apt-get install ca-certificates) or pass --ca-certs", p)
	}
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", p)
	}
	return ca, nil
}

// entry is one file or directory of the layer; name is relative to / and has no trailing slash.
type entry struct {
	name     string
	dir      bool
	mode     int64
	uid, gid int
	data     []byte
}

// baseFiles is everything in the image except the binary.
func baseFiles(ca []byte) []entry {
	return []entry{
		{name: "etc/passwd", mode: 0o644, data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "home/nonroot", dir: true, mode: 0o700, uid: Nonroot, gid: Nonroot},
		// Go's os.TempDir is /tmp. The manager and the simulator write no files; with
		// readOnlyRootFilesystem a pod that needs a scratch directory mounts an emptyDir here.
		{name: "tmp", dir: true, mode: 0o1777},
	}
}

// layerTarball writes the entries, with the parent directories they need (root-owned, 0755),
// sorted by name, all with the same mtime: the same inputs give the same bytes.
func layerTarball(files []entry, mtime time.Time) ([]byte, error) {
	all := map[string]entry{}
	for _, f := range files {
		if _, dup := all[f.name]; dup {
			return nil, fmt.Errorf("duplicate layer entry %s", f.name)
		}
		all[f.name] = f
		for d := path.Dir(f.name); d != "."; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = entry{name: d, dir: true, mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	// A parent's name is a prefix of its children's, so it sorts before them.
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := all[n]
		h := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.gid,
			Uname:   userName(f.uid),
			Gname:   userName(f.gid),
			ModTime: mtime,
		}
		if f.dir {
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func userName(id int) string {
	if id == Nonroot {
		return "nonroot"
	}
	return "root"
}
