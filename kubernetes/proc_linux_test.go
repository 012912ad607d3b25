package kubernetes_test

import "syscall"

// childAttr puts a child in a process group of its own (so that cleanup
// can kill it and anything it started) and has the kernel SIGKILL it when
// the thread that started it dies: startProc starts every child from one
// thread that lives as long as the test binary, so a killed test binary
// (SIGKILL from a timeout or a user) takes its pods and servingkit
// processes with it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

const pdeathsig = true
