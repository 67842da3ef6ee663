package main

import (
	"debug/elf"
	"fmt"
)

// goarch maps an ELF machine to the image config's architecture (Go's GOARCH names, as OCI uses).
var goarch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// staticLinuxArch checks that p is a statically linked Linux executable (the image has no libc and
// no dynamic loader, so anything else fails at exec with a baffling "no such file or directory")
// and returns its architecture.
func staticLinuxArch(p string) (string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("binary %s: not a Linux executable: %w", p, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("binary %s: ELF type %s, not an executable", p, f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return "", fmt.Errorf("binary %s is dynamically linked (it names a program interpreter); build it with CGO_ENABLED=0", p)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return "", fmt.Errorf("binary %s needs shared libraries %v; build it with CGO_ENABLED=0", p, libs)
	}
	arch, ok := goarch[f.Machine]
	if !ok {
		return "", fmt.Errorf("binary %s: unsupported ELF machine %s", p, f.Machine)
	}
	if f.Machine == elf.EM_PPC64 && f.ByteOrder.String() != "LittleEndian" {
		arch = "ppc64"
	}
	return arch, nil
}
