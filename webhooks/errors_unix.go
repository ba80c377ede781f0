package webhooks

import "syscall"

var errConnRefused error = syscall.ECONNREFUSED
