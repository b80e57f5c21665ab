// govc, built from the same govmomi version as the peer, with only the commands the tests and
// benchmarks use (import.ovf, export.ovf, vm.info, vm.power, snapshot.create, ls): govmomi no longer ships govc's main
// package in the module that the Go proxy serves here.
package main

import (
	"os"

	"github.com/vmware/govmomi/cli"
	_ "github.com/vmware/govmomi/cli/export"
	_ "github.com/vmware/govmomi/cli/importx"
	_ "github.com/vmware/govmomi/cli/ls"
	_ "github.com/vmware/govmomi/cli/vm"
	_ "github.com/vmware/govmomi/cli/vm/snapshot"
)

func main() {
	os.Exit(cli.Run(os.Args[1:]))
}
