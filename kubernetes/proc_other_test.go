//go:build unix && !linux

package kubernetes_test

import "syscall"

// childAttr puts a child in a process group of its own; only Linux has a
// parent-death signal, so elsewhere a killed test binary may leave its
// children behind.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

const pdeathsig = false
