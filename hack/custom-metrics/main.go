// Command custom-metrics-adapter serves the Kubernetes custom and external metrics APIs from
// the sample provider of sigs.k8s.io/custom-metrics-apiserver (values are written to it over
// HTTP), so that the local cluster's HorizontalPodAutoscaler controller has a real metrics API
// to read. The upstream test-adapter binary listens for writes on the fixed port :8080, which
// would collide when several local clusters run on one machine; this wrapper only makes that
// address a flag. Everything else is the upstream library.
package main

import (
	"context"
	"net/http"
	"os"
	"time"

	"github.com/emicklei/go-restful/v3"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"

	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	fakeprov "sigs.k8s.io/custom-metrics-apiserver/test-adapter/provider"
)

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()

	adapter := &basecmd.AdapterBase{Name: "fusioninfer-local-custom-metrics"}
	var writeAddress string
	adapter.Flags().StringVar(&writeAddress, "write-address", "127.0.0.1:0",
		"address of the plain-HTTP endpoint that takes metric values (POST /write-metrics/...)")
	logs.AddFlags(adapter.Flags())
	if err := adapter.Flags().Parse(os.Args); err != nil {
		klog.Fatalf("unable to parse flags: %v", err)
	}

	client, err := adapter.DynamicClient()
	if err != nil {
		klog.Fatalf("unable to construct dynamic client: %v", err)
	}
	mapper, err := adapter.RESTMapper()
	if err != nil {
		klog.Fatalf("unable to construct discovery REST mapper: %v", err)
	}
	metricsProvider, writes := fakeprov.NewFakeProvider(client, mapper)
	adapter.WithCustomMetrics(metricsProvider)
	adapter.WithExternalMetrics(metricsProvider)

	container := restful.NewContainer()
	container.Add(writes)
	go func() {
		server := &http.Server{Addr: writeAddress, Handler: container, ReadHeaderTimeout: 3 * time.Second}
		klog.Fatal(server.ListenAndServe())
	}()
	if err := adapter.Run(context.Background()); err != nil {
		klog.Fatalf("unable to run the custom metrics adapter: %v", err)
	}
}
