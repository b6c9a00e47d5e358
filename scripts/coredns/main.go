// coredns: the local node's cluster DNS, built by scripts/kube-assets in the Kubernetes
// build's Go module (so it reuses that build's compiled client-go, gRPC, ...).
//
// Only the plugins the node's Corefile uses (localstack kubenode/dns.py: corefile), in
// CoreDNS's own order (core/dnsserver/zdirectives.go): the cloud DNS SDKs, etcd, dnstap and
// the rest of the default build would triple the compile for nothing. Static (CGO_ENABLED=0).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/acl"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	dnsserver.Directives = []string{"ready", "health", "errors", "acl", "cache", "kubernetes"}
}

func main() { coremain.Run() }
