// Package kubernetes runs servingkit on a Kubernetes cluster: Knative's
// autoscaler (KPA, panic mode, scale to zero) and activator in front of any
// scalable workload, configured by annotations on ordinary Services, with
// no Knative installed.
//
// The pieces, each usable alone:
//
//   - [ParseService] reads a Service's annotations (see the Annotation
//     constants) into a [ServiceSpec], naming each bad annotation and its
//     allowed range; [ParseTraffic] reads a traffic split across Services
//     (TrafficAnnotation) into a [TrafficSpec].
//   - [Scaler] is an autoscaler.Scaler over the scale subresource of the
//     target workload (Deployment, StatefulSet, any kind that has one),
//     retrying on conflicts.
//   - [EndpointsWatcher] follows EndpointSlices (label
//     kubernetes.io/service-name) with a client-go informer and hands each
//     Service's ready endpoints to a callback.
//   - [Lease] is the autoscaler's bucket ownership (autoscaler.Lease)
//     through coordination.k8s.io/v1 Lease objects, one per bucket, read
//     and written with client-go's resourcelock.
//   - [Server] composes them with the core packages into one process:
//     gateway (traffic.Router), per Service a front door (revision) fed by
//     gateway.Endpoints, the activator, and the autoscaler of the buckets
//     this process owns (autoscaler.Shards). The owner of a Service
//     publishes the serving mode its decisions want
//     (ServingModeAnnotation) and every replica's front door follows it.
//
// cmd/servingkit is Server as a binary, cmd/queue the queue as a pod's
// sidecar; deploy/ has the manifests. See README.md.
package kubernetes
