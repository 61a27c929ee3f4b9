// Command demo-exporter serves, on /metrics, the Prometheus text exposition that a file holds,
// read again on every scrape. The demo (hack/demo.sh) runs it on a loopback port for its Prometheus
// to scrape: kwok's pods serve no traffic, so the demo sets the error ratio each model version
// would report by rewriting the file (write a temporary file, then rename it over the old one).
//
// Usage: demo-exporter --listen 127.0.0.1:18082 --file /path/to/metrics.prom
package main

import (
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18082", "the address to serve /metrics on")
	file := flag.String("file", "", "the file holding the metrics, in the Prometheus text format")
	flag.Parse()
	if *file == "" {
		log.Fatal("--file is required")
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		body, err := os.ReadFile(*file)
		if errors.Is(err, os.ErrNotExist) {
			body, err = nil, nil // no file yet: no series
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(body)
	})
	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("Serving %s on http://%s/metrics", *file, *listen)
	log.Fatal(server.ListenAndServe())
}
