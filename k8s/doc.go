// Package k8s holds LeadFlow's Kubernetes manifests (a kustomize base,
// components and overlays) and the tests that render every overlay, decode
// each object strictly into its Kubernetes API type and check it against
// what the services actually are: ports, health service names, the
// configuration variables the platform reads, and the calls between services
// that the NetworkPolicies must allow (and nothing else). The same tests check
// deploy/ (compose file, Collector configuration, Dockerfile).
package k8s
