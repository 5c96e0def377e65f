package platformtest

import "syscall"

// syscallZero probes whether a process is still alive.
var syscallZero = syscall.Signal(0)
