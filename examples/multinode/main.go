// Command multinode runs servingkit as several processes, the shape of a
// deployment on several machines, on one machine's loopback:
//
//	client ─▶ gateway A or B (router ▶ front door)
//	              ├─ Serve ─▶ balancer ──────────┐
//	              └─ Proxy ─▶ activator A or B ──┴─▶ replica processes (queue ▶ app)
//	autoscaler 1, 2: one owns the revisions (FileLease); stats from
//	   activators and replicas go to either and reach the owner; the
//	   gateways poll the owner's decisions (Proxy or Serve)
//	agent: starts and stops replica processes (the "kubelet"), lists the
//	   ready ones
//
// Each role is a subcommand: agent, replica, autoscaler, gateway (see
// -h of each). The test (multinode_test.go) starts two gateways, two
// autoscalers and an agent, kills the owning autoscaler and a gateway
// under load, and checks that nothing is lost.
package main

import (
	"fmt"
	"os"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: multinode agent|replica|autoscaler|gateway [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "agent":
		err = runAgent(args[1:])
	case "replica":
		err = runReplica(args[1:])
	case "autoscaler":
		err = runAutoscaler(args[1:])
	case "gateway":
		err = runGateway(args[1:])
	default:
		err = fmt.Errorf("unknown role %q, want agent, replica, autoscaler or gateway", args[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "multinode %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
