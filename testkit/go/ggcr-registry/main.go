// A registry with the OCI 1.1 referrers API, for replicant's tests:
// go-containerregistry's pkg/registry (in memory) with referrers support,
// served on a loopback address. It prints "listening on ADDR" once ready
// and serves until killed.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	quiet := flag.Bool("quiet", false, "no request log")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !(host == "127.0.0.1" || host == "localhost" || strings.HasPrefix(host, "127.")) {
		log.Fatalf("only loopback addresses: %q", *addr)
	}
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	logs := log.New(os.Stderr, "", log.LstdFlags)
	if *quiet {
		logs = log.New(io.Discard, "", 0)
	}
	handler := registry.New(registry.Logger(logs), registry.WithReferrersSupport(true))
	fmt.Printf("listening on %s\n", listener.Addr())
	log.Fatal((&http.Server{Handler: handler}).Serve(listener))
}
