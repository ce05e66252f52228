// Command etcd is etcd's own server, built from go.etcd.io/etcd/server/v3 at
// the version this module pins, for the fleet tests (internal/testutil/etcdtest)
// and for local experiments. It is a module of its own so that fronttier's
// go.mod does not take etcd's server dependencies; .ci/run builds it into
// $(go env GOPATH)/bin/etcd.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
