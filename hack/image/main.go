// Command image builds a container image around one static Linux binary, without a Docker daemon:
// an empty base (no shell, no package manager), one layer with the binary, the host's CA bundle, a
// minimal /etc/passwd and /etc/group for the nonroot user 65532 and an empty /tmp, written as a
// docker-archive tarball (what `docker load` and `ctr images import` read). The output is
// deterministic: the same binary, CA bundle, flags and epoch give the same image digest.
//
//	go run ./hack/image --binary bin/images/linux-amd64/manager --entrypoint /manager \
//	  --tag thingspace-operator:dev --out bin/images/thingspace-operator.tar \
//	  [--ca-certs /etc/ssl/certs/ca-certificates.crt] [--epoch SECONDS] \
//	  [--source URL] [--version V] [--revision SHA] [--label KEY=VALUE ...]
//
// `make image` builds the binaries (CGO_ENABLED=0, -trimpath) and calls this for the manager and
// the simulator images.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// labelFlags collects repeated --label KEY=VALUE flags.
type labelFlags map[string]string

func (l labelFlags) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labelFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q: want KEY=VALUE", s)
	}
	l[k] = v
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var (
		spec  Spec
		out   string
		epoch string
	)
	spec.Labels = map[string]string{}
	fs.StringVar(&spec.Binary, "binary", "", "Static Linux binary to put into the image (required).")
	fs.StringVar(&spec.Entrypoint, "entrypoint", "", "Absolute path of the binary in the image, also the Entrypoint (default /<binary's base name>).")
	fs.StringVar(&spec.Tag, "tag", "", "Image reference written into the tarball's RepoTags, e.g. thingspace-operator:dev (required).")
	fs.StringVar(&out, "out", "", "Path of the docker-archive tarball to write (required).")
	fs.StringVar(&spec.CACerts, "ca-certs", DefaultCACerts, "CA bundle copied to /etc/ssl/certs/ca-certificates.crt (Debian: package ca-certificates).")
	fs.StringVar(&epoch, "epoch", os.Getenv("SOURCE_DATE_EPOCH"), "Unix seconds used for every file's mtime and the image's created time (default $SOURCE_DATE_EPOCH, else 0).")
	fs.StringVar(&spec.Source, "source", "", "Label org.opencontainers.image.source.")
	fs.StringVar(&spec.Version, "version", "", "Label org.opencontainers.image.version.")
	fs.StringVar(&spec.Revision, "revision", "", "Label org.opencontainers.image.revision.")
	fs.Var(labelFlags(spec.Labels), "label", "Extra label KEY=VALUE (repeatable).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if spec.Binary == "" || spec.Tag == "" || out == "" {
		return errors.New("--binary, --tag and --out are required")
	}
	if epoch != "" {
		secs, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil || secs < 0 {
			return fmt.Errorf("epoch %q: want non-negative Unix seconds", epoch)
		}
		spec.Epoch = time.Unix(secs, 0).UTC()
	} else {
		spec.Epoch = time.Unix(0, 0).UTC()
	}

	start := time.Now()
	sum, err := Write(spec, out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s (%s)\n", out, spec.Tag, sum.Platform)
	fmt.Printf("  image ID (config digest) %s\n", sum.ConfigDigest)
	// containerd and docker rebuild the manifest when they load a docker archive (it holds none):
	// this digest is the one a registry push of this image would have.
	fmt.Printf("  manifest digest          %s (in a registry; a loaded archive gets its own)\n", sum.ManifestDigest)
	fmt.Printf("  layer %s compressed, %s uncompressed; tarball %s; written in %s\n",
		mib(sum.LayerCompressed), mib(sum.LayerUncompressed), mib(sum.TarballSize), time.Since(start).Round(time.Millisecond))
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
