package k8s_test

import (
	"net"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// endpoint is a pod (or an address outside the cluster) for the NetworkPolicy
// evaluation below.
type endpoint struct {
	name     string
	ns       string
	nsLabels labels.Set
	labels   labels.Set
	ports    []corev1.ContainerPort
	ip       net.IP // set for addresses outside the cluster
	ours     bool   // a pod of the render, subject to its policies
}

// netModel evaluates the render's NetworkPolicies the way the API defines
// them: a pod selected by any policy of a type is isolated for that
// direction, and a connection needs both the source's egress and the
// destination's ingress to allow it.
type netModel struct {
	policies []*networkingv1.NetworkPolicy
	pods     map[string]endpoint
	ns       string
	nsLabels labels.Set
}

func newNetModel(t *testing.T, m *manifests) *netModel {
	t.Helper()
	nm := &netModel{policies: all[networkingv1.NetworkPolicy](m, "NetworkPolicy"), pods: map[string]endpoint{}}
	for _, ns := range all[corev1.Namespace](m, "Namespace") {
		nm.ns = ns.Name
		nm.nsLabels = labels.Merge(labels.Set(ns.Labels), labels.Set{"kubernetes.io/metadata.name": ns.Name})
	}
	for _, d := range all[appsv1.Deployment](m, "Deployment") {
		var ports []corev1.ContainerPort
		for _, c := range d.Spec.Template.Spec.Containers {
			ports = append(ports, c.Ports...)
		}
		nm.pods[d.Name] = endpoint{name: d.Name, ns: nm.ns, nsLabels: nm.nsLabels, labels: labels.Set(d.Spec.Template.Labels), ports: ports, ours: true}
	}
	return nm
}

func (nm *netModel) pod(t *testing.T, name string) endpoint {
	t.Helper()
	p, ok := nm.pods[name]
	if !ok {
		t.Fatalf("no Deployment %s", name)
	}
	return p
}

func foreignPod(name, ns string, podLabels labels.Set) endpoint {
	return endpoint{name: name, ns: ns, nsLabels: labels.Set{"kubernetes.io/metadata.name": ns}, labels: podLabels}
}

func external(ip string) endpoint { return endpoint{name: ip, ip: net.ParseIP(ip)} }

// allowed reports whether src may open a connection to dst:port/proto.
func (nm *netModel) allowed(src, dst endpoint, port int32, proto corev1.Protocol) bool {
	return nm.direction(src, dst, port, proto, networkingv1.PolicyTypeEgress) &&
		nm.direction(dst, src, port, proto, networkingv1.PolicyTypeIngress)
}

// direction: for egress, subject=src and peer=dst; for ingress, subject=dst
// and peer=src. The port is always the destination's.
func (nm *netModel) direction(subject, peer endpoint, port int32, proto corev1.Protocol, pt networkingv1.PolicyType) bool {
	if !subject.ours {
		return true // not ours: no policy of the render isolates it
	}
	dst := peer
	if pt == networkingv1.PolicyTypeIngress {
		dst = subject
	}
	isolated := false
	for _, p := range nm.policies {
		if !selects(&p.Spec.PodSelector, subject.labels) || !slices.Contains(p.Spec.PolicyTypes, pt) {
			continue
		}
		isolated = true
		if pt == networkingv1.PolicyTypeEgress {
			for _, r := range p.Spec.Egress {
				if peersMatch(r.To, peer, nm.ns) && portsMatch(r.Ports, dst, port, proto) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Ingress {
				if peersMatch(r.From, peer, nm.ns) && portsMatch(r.Ports, dst, port, proto) {
					return true
				}
			}
		}
	}
	return !isolated
}

func selects(sel *metav1.LabelSelector, set labels.Set) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(set)
}

func peersMatch(peers []networkingv1.NetworkPolicyPeer, e endpoint, policyNS string) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			if e.ip == nil {
				continue
			}
			_, cidr, err := net.ParseCIDR(p.IPBlock.CIDR)
			if err != nil || !cidr.Contains(e.ip) {
				continue
			}
			excluded := false
			for _, ex := range p.IPBlock.Except {
				if _, c, err := net.ParseCIDR(ex); err == nil && c.Contains(e.ip) {
					excluded = true
				}
			}
			if !excluded {
				return true
			}
			continue
		}
		if e.ip != nil {
			continue
		}
		nsOK := e.ns == policyNS
		if p.NamespaceSelector != nil {
			nsOK = selects(p.NamespaceSelector, e.nsLabels)
		}
		podOK := p.PodSelector == nil || selects(p.PodSelector, e.labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

func portsMatch(ports []networkingv1.NetworkPolicyPort, dst endpoint, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.Int:
			end := p.Port.IntVal
			if p.EndPort != nil {
				end = *p.EndPort
			}
			if port >= p.Port.IntVal && port <= end {
				return true
			}
		default:
			for _, cp := range dst.ports {
				if cp.Name == p.Port.StrVal && cp.ContainerPort == port {
					return true
				}
			}
		}
	}
	return false
}

// checkCallGraph: the NetworkPolicies allow exactly the calls the design
// makes between services, the API clients, DNS, Redis and the Collector,
// and nothing else tried here.
func checkCallGraph(t *testing.T, m *manifests) {
	nm := newNetModel(t, m)
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	apiClient := foreignPod("leadflow-cli", "tools", labels.Set{"leadflow.io/api-client": "true"})
	stranger := foreignPod("stranger", "tools", labels.Set{"app": "other"})
	localStranger := endpoint{name: "local-stranger", ns: nm.ns, nsLabels: nm.nsLabels, labels: labels.Set{"app": "other"}}
	dns := foreignPod("coredns", "kube-system", labels.Set{"k8s-app": "kube-dns"})
	internet := external("203.0.113.7")

	redis, inCluster := nm.pods["redis"]
	if !inCluster {
		redis = external("10.0.1.10") // production: an address in the Redis subnet
	}
	collector, inCluster := nm.pods["otel-collector"]
	if !inCluster {
		collector = foreignPod("otel-collector", "observability", labels.Set{"app.kubernetes.io/name": "opentelemetry-collector"})
	}

	for _, a := range services {
		src := nm.pod(t, a.name)
		for _, b := range services {
			if a.name == b.name {
				continue
			}
			want := slices.Contains(a.calls, b.name)
			if got := nm.allowed(src, nm.pod(t, b.name), b.port, tcp); got != want {
				t.Errorf("%s → %s:%d allowed=%v, want %v (the design's calls)", a.name, b.name, b.port, got, want)
			}
		}
		dst := nm.pod(t, a.name)
		if !nm.allowed(apiClient, dst, a.port, tcp) {
			t.Errorf("an API client (leadflow.io/api-client=true) cannot reach %s:%d", a.name, a.port)
		}
		if nm.allowed(stranger, dst, a.port, tcp) || nm.allowed(localStranger, dst, a.port, tcp) {
			t.Errorf("an unlabelled pod reaches %s:%d", a.name, a.port)
		}
		if !nm.allowed(src, dns, 53, udp) || !nm.allowed(src, dns, 53, tcp) {
			t.Errorf("%s cannot resolve names (DNS 53)", a.name)
		}
		if !nm.allowed(src, redis, 6379, tcp) {
			t.Errorf("%s cannot reach Redis %s:6379", a.name, redis.name)
		}
		if !nm.allowed(src, collector, 4317, tcp) {
			t.Errorf("%s cannot reach the Collector %s/%s:4317", a.name, collector.ns, collector.name)
		}
		if nm.allowed(src, internet, 443, tcp) {
			t.Errorf("%s reaches the internet", a.name)
		}
		if j, ok := nm.pods["jaeger"]; ok && nm.allowed(src, j, 16686, tcp) {
			t.Errorf("%s reaches the trace viewer's UI", a.name)
		}
	}
	if redis.ours {
		if nm.allowed(localStranger, redis, 6379, tcp) {
			t.Errorf("a pod that is not a LeadFlow service reaches Redis")
		}
	}
	if len(nm.policies) == 0 || !strings.HasPrefix(nm.ns, "leadflow") {
		t.Errorf("namespace %q, %d policies", nm.ns, len(nm.policies))
	}
}
