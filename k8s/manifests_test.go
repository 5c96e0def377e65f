package k8s_test

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var parseDuration = time.ParseDuration

// overlays are the deployable kustomizations.
var overlays = []string{"overlays/dev", "overlays/production"}

// TestBase checks the base alone: every service complete and hardened.
// The base leaves out where Redis is, so it is not deployable by itself.
func TestBase(t *testing.T) {
	m := load(t, "base")
	for _, s := range services {
		t.Run(s.name, func(t *testing.T) { checkService(t, m, s, false) })
	}
}

func TestOverlays(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			m := load(t, dir)
			for _, s := range services {
				t.Run(s.name, func(t *testing.T) { checkService(t, m, s, true) })
			}
			t.Run("images", func(t *testing.T) { checkImages(t, m) })
			t.Run("networkpolicy", func(t *testing.T) { checkCallGraph(t, m) })
			t.Run("namespace", func(t *testing.T) { checkNamespace(t, m) })
		})
	}
}

// checkService checks one service's Deployment, Service, ServiceAccount,
// HPA, PDB, NetworkPolicy and environment.
func checkService(t *testing.T, m *manifests, s service, deployable bool) {
	d := get[appsv1.Deployment](t, m, "Deployment", s.name)
	pod := &d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)

	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("Deployment selector %v does not match its pods %v", d.Spec.Selector, podLabels)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("Deployment sets replicas (%d); the HorizontalPodAutoscaler owns the count", *d.Spec.Replicas)
	}

	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := &pod.Containers[0]

	// Port.
	var grpcPort *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "grpc" {
			grpcPort = &c.Ports[i]
		}
	}
	if grpcPort == nil || grpcPort.ContainerPort != s.port {
		t.Fatalf("container port grpc = %v, want %d", grpcPort, s.port)
	}

	// Probes: gRPC health on the service's port; readiness asks for the
	// proto service name (the platform sets it from Redis reachability).
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.GRPC == nil {
			t.Errorf("%s probe is not a gRPC probe: %+v", name, p)
			continue
		}
		if p.GRPC.Port != s.port {
			t.Errorf("%s probe on port %d, want %d", name, p.GRPC.Port, s.port)
		}
		if p.GRPC.Service == nil {
			t.Errorf("%s probe names no health service", name)
		}
	}
	if p := c.ReadinessProbe; p != nil && p.GRPC != nil && (p.GRPC.Service == nil || *p.GRPC.Service != s.proto) {
		t.Errorf("readiness probe asks for %q, want %q", ptrString(p.GRPC.Service), s.proto)
	}
	if p := c.LivenessProbe; p != nil && p.GRPC != nil && p.GRPC.Service != nil && *p.GRPC.Service != "" && *p.GRPC.Service != s.proto {
		t.Errorf("liveness probe asks for %q, want \"\" or %q", *p.GRPC.Service, s.proto)
	}

	// Service.
	svc := get[corev1.Service](t, m, "Service", s.name)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, podLabels)
	}
	if len(svc.Spec.Ports) != 1 {
		t.Errorf("Service has %d ports, want 1", len(svc.Spec.Ports))
	} else {
		sp := svc.Spec.Ports[0]
		if sp.Port != s.port {
			t.Errorf("Service port %d, want %d", sp.Port, s.port)
		}
		if got := resolvePort(sp.TargetPort, c); got != s.port {
			t.Errorf("Service targetPort %s resolves to %d, want the container's %d", sp.TargetPort.String(), got, s.port)
		}
		if sp.Protocol != corev1.ProtocolTCP {
			t.Errorf("Service protocol %s", sp.Protocol)
		}
	}

	// ServiceAccount: own, no API token.
	sa := get[corev1.ServiceAccount](t, m, "ServiceAccount", s.name)
	if pod.ServiceAccountName != s.name {
		t.Errorf("pod runs as service account %q, want %q", pod.ServiceAccountName, s.name)
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount mounts its token")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("pod mounts a service account token")
	}

	checkHardened(t, pod, c)
	checkResources(t, c)

	// HPA.
	hpa := get[autoscalingv2.HorizontalPodAutoscaler](t, m, "HorizontalPodAutoscaler", s.name)
	if r := hpa.Spec.ScaleTargetRef; r.Kind != "Deployment" || r.Name != s.name || r.APIVersion != "apps/v1" {
		t.Errorf("HPA targets %+v", r)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 1 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
		t.Errorf("HPA min %v max %d", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	if len(hpa.Spec.Metrics) == 0 {
		t.Errorf("HPA has no metric")
	}
	for _, mt := range hpa.Spec.Metrics {
		if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil {
			if _, ok := c.Resources.Requests[mt.Resource.Name]; !ok {
				t.Errorf("HPA scales on %s utilisation but the container requests no %s", mt.Resource.Name, mt.Resource.Name)
			}
		}
	}

	// PDB.
	pdb := get[policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget", s.name)
	if ps, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err != nil || ps.Empty() || !ps.Matches(podLabels) {
		t.Errorf("PDB selector %v does not select the pods", pdb.Spec.Selector)
	}
	if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
		t.Errorf("PDB sets neither maxUnavailable nor minAvailable")
	}
	if pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int && hpa.Spec.MinReplicas != nil &&
		pdb.Spec.MinAvailable.IntVal >= *hpa.Spec.MinReplicas {
		t.Errorf("PDB minAvailable %d with as few as %d replicas blocks every drain", pdb.Spec.MinAvailable.IntVal, *hpa.Spec.MinReplicas)
	}

	// NetworkPolicy: one of its own, covering ingress and egress.
	np := get[networkingv1.NetworkPolicy](t, m, "NetworkPolicy", s.name)
	if ns, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err != nil || ns.Empty() || !ns.Matches(podLabels) {
		t.Errorf("NetworkPolicy %s does not select the pods", s.name)
	}
	if !hasPolicyType(np, networkingv1.PolicyTypeIngress) || !hasPolicyType(np, networkingv1.PolicyTypeEgress) {
		t.Errorf("NetworkPolicy %s policyTypes %v, want Ingress and Egress", s.name, np.Spec.PolicyTypes)
	}

	// Environment.
	env := effectiveEnv(t, m, c)
	for name, v := range env {
		checkVar(t, s.name, s.name, name, v.value, v.literal)
	}
	if v := env["LEADFLOW_GRPC_ADDR"]; v.literal {
		if _, port, err := net.SplitHostPort(v.value); err != nil || port != strconv.Itoa(int(s.port)) {
			t.Errorf("LEADFLOW_GRPC_ADDR=%q, want the container port %d", v.value, s.port)
		}
	}
	if v := env["OTEL_SERVICE_NAME"]; v.value != s.name {
		t.Errorf("OTEL_SERVICE_NAME=%q, want %q", v.value, s.name)
	}
	if v := env["OTEL_EXPORTER_OTLP_PROTOCOL"]; v.value != "grpc" {
		t.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q, want grpc (the Collector's 4317)", v.value)
	}
	if v := env["OTEL_RESOURCE_ATTRIBUTES"]; strings.Contains(v.value, "$(") {
		t.Errorf("OTEL_RESOURCE_ATTRIBUTES=%q references an undefined variable", v.value)
	}
	// Peers: each address is a Service of the render, on that service's port.
	for _, peer := range services {
		name := "LEADFLOW_" + strings.ToUpper(peer.name) + "_ADDR"
		v, ok := env[name]
		if !ok {
			t.Errorf("%s not set", name)
			continue
		}
		host, port, err := net.SplitHostPort(v.value)
		if err != nil || port != strconv.Itoa(int(peer.port)) {
			t.Errorf("%s=%q, want host:%d", name, v.value, peer.port)
			continue
		}
		if _, ok := lookup[corev1.Service](m, "Service", strings.Split(host, ".")[0]); !ok {
			t.Errorf("%s=%q: no such Service", name, v.value)
		}
	}

	// Graceful stop fits in the grace period: preStop + drain + shutdown timeout.
	shutdown := durationVar(t, env, "LEADFLOW_SHUTDOWN_DRAIN") + durationVar(t, env, "LEADFLOW_SHUTDOWN_TIMEOUT")
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	grace := 30 * time.Second // the Kubernetes default
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	if grace <= preStop+shutdown {
		t.Errorf("terminationGracePeriodSeconds %s <= preStop %s + LEADFLOW_SHUTDOWN_DRAIN + LEADFLOW_SHUTDOWN_TIMEOUT %s: SIGKILL would cut the graceful stop", grace, preStop, shutdown)
	}

	if deployable {
		if _, ok := env["LEADFLOW_REDIS_URL"]; !ok {
			t.Errorf("LEADFLOW_REDIS_URL not set: the service would try 127.0.0.1:6379")
		}
		if env["OTEL_EXPORTER_OTLP_ENDPOINT"].value == "" {
			t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT not set")
		}
	}
}

func hasPolicyType(np *networkingv1.NetworkPolicy, pt networkingv1.PolicyType) bool {
	for _, p := range np.Spec.PolicyTypes {
		if p == pt {
			return true
		}
	}
	return false
}

func resolvePort(p intstr.IntOrString, c *corev1.Container) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

func checkHardened(t *testing.T, pod *corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	psc, csc := pod.SecurityContext, c.SecurityContext
	if psc == nil || csc == nil {
		t.Fatalf("securityContext missing (pod %v, container %v)", psc, csc)
	}
	if !isTrue(csc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
		t.Errorf("runAsNonRoot not set")
	}
	if uid := firstInt64(csc.RunAsUser, psc.RunAsUser); uid != nil && *uid == 0 {
		t.Errorf("runs as uid 0")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation not false")
	}
	if !isTrue(csc.ReadOnlyRootFilesystem) {
		t.Errorf("readOnlyRootFilesystem not true")
	}
	if isTrue(csc.Privileged) {
		t.Errorf("privileged")
	}
	if csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || len(csc.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and nothing added", csc.Capabilities)
	}
	seccomp := psc.SeccompProfile
	if csc.SeccompProfile != nil {
		seccomp = csc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %v, want RuntimeDefault", seccomp)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("shares a host namespace")
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("hostPath volume %s", v.Name)
		}
	}
}

func checkResources(t *testing.T, c *corev1.Container) {
	t.Helper()
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim || req.IsZero() || lim.IsZero() {
			t.Errorf("%s: request %v limit %v; both must be set", r, req.String(), lim.String())
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: request %s above limit %s", r, req.String(), lim.String())
		}
	}
}

func ptrString(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func isTrue(b *bool) bool { return b != nil && *b }

func firstInt64(vs ...*int64) *int64 {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// envValue is one variable as the container will see it.
type envValue struct {
	value   string
	literal bool // value known from the manifests (not a Secret or the downward API)
	secret  *corev1.SecretKeySelector
	source  string
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// effectiveEnv resolves envFrom ConfigMaps and env (env wins), expanding
// $(VAR) references the way the kubelet does.
func effectiveEnv(t *testing.T, m *manifests, c *corev1.Container) map[string]envValue {
	t.Helper()
	env := map[string]envValue{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := lookup[corev1.ConfigMap](m, "ConfigMap", ef.ConfigMapRef.Name)
			if !ok {
				t.Errorf("envFrom ConfigMap %q is not in the render", ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = envValue{value: v, literal: true, source: "ConfigMap " + cm.Name}
			}
		default:
			t.Errorf("envFrom %+v: only ConfigMaps are expected (name Secret keys one by one)", ef)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			v := varRef.ReplaceAllStringFunc(e.Value, func(ref string) string {
				name := varRef.FindStringSubmatch(ref)[1]
				if prev, ok := env[name]; ok {
					if prev.literal {
						return prev.value
					}
					return "<" + name + ">"
				}
				return ref
			})
			env[e.Name] = envValue{value: v, literal: true, source: "env"}
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = envValue{secret: e.ValueFrom.SecretKeyRef, source: "Secret " + e.ValueFrom.SecretKeyRef.Name}
		default:
			env[e.Name] = envValue{source: "downward API"}
		}
	}
	return env
}

// durationVar is the variable's value, or the code's default.
func durationVar(t *testing.T, env map[string]envValue, name string) time.Duration {
	t.Helper()
	s := readVars(t)[name].Default
	if v, ok := env[name]; ok && v.literal {
		s = v.value
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return d
}

func checkImages(t *testing.T, m *manifests) {
	for _, d := range all[appsv1.Deployment](m, "Deployment") {
		for _, c := range d.Spec.Template.Spec.Containers {
			ref := c.Image
			if i := strings.LastIndex(ref, "/"); i >= 0 {
				ref = ref[i+1:]
			}
			_, tag, ok := strings.Cut(ref, ":")
			if !ok && !strings.Contains(c.Image, "@sha256:") {
				t.Errorf("%s/%s: image %q has no tag", d.Name, c.Name, c.Image)
			}
			if tag == "latest" {
				t.Errorf("%s/%s: image %q uses latest", d.Name, c.Name, c.Image)
			}
		}
	}
}

func checkNamespace(t *testing.T, m *manifests) {
	nss := all[corev1.Namespace](m, "Namespace")
	if len(nss) != 1 {
		t.Fatalf("%d Namespaces, want 1", len(nss))
	}
	ns := nss[0]
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("Namespace %s does not enforce the restricted Pod Security Standard", ns.Name)
	}
	for _, k := range m.order {
		if strings.HasPrefix(k, "Namespace/") {
			continue
		}
		if got := objectMeta(m.objects[k]).Namespace; got != ns.Name {
			t.Errorf("%s in namespace %q, want %q", k, got, ns.Name)
		}
	}
}

func objectMeta(o any) metav1.ObjectMeta {
	switch v := o.(type) {
	case *corev1.ServiceAccount:
		return v.ObjectMeta
	case *corev1.Service:
		return v.ObjectMeta
	case *corev1.ConfigMap:
		return v.ObjectMeta
	case *corev1.Secret:
		return v.ObjectMeta
	case *corev1.PersistentVolumeClaim:
		return v.ObjectMeta
	case *appsv1.Deployment:
		return v.ObjectMeta
	case *autoscalingv2.HorizontalPodAutoscaler:
		return v.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return v.ObjectMeta
	case *networkingv1.NetworkPolicy:
		return v.ObjectMeta
	case *corev1.Namespace:
		return v.ObjectMeta
	}
	panic(fmt.Sprintf("objectMeta: %T", o))
}

// TestDev: the in-cluster Redis (AOF on a volume) and Collector are there
// and the services point at them.
func TestDev(t *testing.T) {
	m := load(t, "overlays/dev")
	redis := get[appsv1.Deployment](t, m, "Deployment", "redis")
	args := strings.Join(append(redis.Spec.Template.Spec.Containers[0].Command, redis.Spec.Template.Spec.Containers[0].Args...), " ")
	if !strings.Contains(args, "--appendonly yes") {
		t.Errorf("Redis runs %q: append-only file is off", args)
	}
	if redis.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("Redis strategy %s: two pods would share the volume during a rollout", redis.Spec.Strategy.Type)
	}
	var pvc bool
	for _, v := range redis.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			get[corev1.PersistentVolumeClaim](t, m, "PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName)
			pvc = true
		}
	}
	if !pvc {
		t.Errorf("Redis data is not on a PersistentVolumeClaim")
	}
	for _, name := range []string{"redis", "otel-collector", "jaeger"} {
		d := get[appsv1.Deployment](t, m, "Deployment", name)
		checkHardened(t, &d.Spec.Template.Spec, &d.Spec.Template.Spec.Containers[0])
		checkResources(t, &d.Spec.Template.Spec.Containers[0])
	}

	c := &get[appsv1.Deployment](t, m, "Deployment", "capture").Spec.Template.Spec.Containers[0]
	env := effectiveEnv(t, m, c)
	u, err := url.Parse(env["LEADFLOW_REDIS_URL"].value)
	if err != nil || u.Scheme != "redis" {
		t.Fatalf("LEADFLOW_REDIS_URL=%q", env["LEADFLOW_REDIS_URL"].value)
	}
	checkServiceAddr(t, m, "LEADFLOW_REDIS_URL", u.Host, "redis")
	ep, err := url.Parse(env["OTEL_EXPORTER_OTLP_ENDPOINT"].value)
	if err != nil {
		t.Fatal(err)
	}
	checkServiceAddr(t, m, "OTEL_EXPORTER_OTLP_ENDPOINT", ep.Host, "opentelemetry-collector")
	// The Collector exports to the viewer at jaeger:4317.
	checkServiceAddr(t, m, "the Collector's otlp/jaeger exporter", "jaeger:4317", "jaeger")
}

// checkServiceAddr: hostport names a Service of the render whose port
// reaches a container port of pods labelled app.kubernetes.io/name=app.
func checkServiceAddr(t *testing.T, m *manifests, what, hostport, app string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: %q: %v", what, hostport, err)
		return
	}
	svc, ok := lookup[corev1.Service](m, "Service", host)
	if !ok {
		t.Errorf("%s: no Service %q", what, host)
		return
	}
	if svc.Spec.Selector["app.kubernetes.io/name"] != app {
		t.Errorf("%s: Service %s selects %v, want app.kubernetes.io/name=%s", what, host, svc.Spec.Selector, app)
	}
	for _, p := range svc.Spec.Ports {
		if strconv.Itoa(int(p.Port)) == port {
			return
		}
	}
	t.Errorf("%s: Service %s has no port %s", what, host, port)
}

// TestProduction: Redis and caller tokens come from Secrets, nothing secret
// is in the manifests, more replicas, no in-cluster Redis.
func TestProduction(t *testing.T) {
	m := load(t, "overlays/production")
	if len(all[corev1.Secret](m, "Secret")) != 0 {
		t.Errorf("the production overlay carries a Secret; Secrets are created outside git")
	}
	for _, name := range []string{"redis", "otel-collector", "jaeger"} {
		if _, ok := lookup[appsv1.Deployment](m, "Deployment", name); ok {
			t.Errorf("production runs an in-cluster %s", name)
		}
	}
	for _, s := range services {
		t.Run(s.name, func(t *testing.T) {
			d := get[appsv1.Deployment](t, m, "Deployment", s.name)
			c := &d.Spec.Template.Spec.Containers[0]
			env := effectiveEnv(t, m, c)
			if v := env["LEADFLOW_REDIS_URL"]; v.secret == nil || v.secret.Name == "" || v.secret.Key == "" {
				t.Errorf("LEADFLOW_REDIS_URL comes from %s, want a secretKeyRef", v.source)
			}
			if v := env["LEADFLOW_CLIENT_TOKEN"]; v.secret == nil || v.secret.Key != s.name+".token" {
				t.Errorf("LEADFLOW_CLIENT_TOKEN comes from %s (%+v), want secretKeyRef key %s.token", v.source, v.secret, s.name)
			}
			if _, ok := env["LEADFLOW_AUTH_TOKENS"]; ok {
				t.Errorf("LEADFLOW_AUTH_TOKENS set in plain text")
			}
			// The caller policy file is on a read-only Secret volume.
			file := env["LEADFLOW_AUTH_TOKENS_FILE"].value
			if file == "" {
				t.Fatalf("LEADFLOW_AUTH_TOKENS_FILE not set: the dev policy (every method for token leadflow-dev) would apply")
			}
			var found bool
			for _, vm := range c.VolumeMounts {
				if !strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/") {
					continue
				}
				for _, v := range d.Spec.Template.Spec.Volumes {
					if v.Name == vm.Name && v.Secret != nil {
						found = vm.ReadOnly
						if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
							t.Errorf("auth Secret volume mode %v is world-readable", v.Secret.DefaultMode)
						}
					}
				}
			}
			if !found {
				t.Errorf("LEADFLOW_AUTH_TOKENS_FILE=%s is not on a read-only Secret volume", file)
			}
			hpa := get[autoscalingv2.HorizontalPodAutoscaler](t, m, "HorizontalPodAutoscaler", s.name)
			if *hpa.Spec.MinReplicas < 3 {
				t.Errorf("HPA minReplicas %d, want at least 3 in production", *hpa.Spec.MinReplicas)
			}
		})
	}
	cm := configMap(t, m, "leadflow-config")
	for k, v := range cm.Data {
		if strings.Contains(strings.ToLower(k), "token") && k != "LEADFLOW_AUTH_TOKENS_FILE" || strings.Contains(v, "@") {
			t.Errorf("ConfigMap %s holds %s=%q, which looks secret", cm.Name, k, v)
		}
	}
	if _, ok := cm.Data["LEADFLOW_REDIS_URL"]; ok {
		t.Errorf("ConfigMap holds LEADFLOW_REDIS_URL; it comes from the Secret")
	}
}

// configMap finds a generated ConfigMap by its name before the hash suffix.
func configMap(t *testing.T, m *manifests, prefix string) *corev1.ConfigMap {
	t.Helper()
	var found *corev1.ConfigMap
	for _, cm := range all[corev1.ConfigMap](m, "ConfigMap") {
		if cm.Name == prefix || strings.HasPrefix(cm.Name, prefix+"-") && len(cm.Name) == len(prefix)+11 {
			if found != nil {
				t.Fatalf("two ConfigMaps named %s*", prefix)
			}
			found = cm
		}
	}
	if found == nil {
		t.Fatalf("no ConfigMap %s", prefix)
	}
	return found
}
