package k8s_test

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// service is one LeadFlow service as the README (Architecture reference) defines it.
type service struct {
	name  string
	port  int32
	proto string   // full proto service name: the health service name
	calls []string // the services it calls
}

var services = []service{
	{"capture", 7001, "leadflow.capture.v1.CaptureService", []string{"scoring"}},
	{"scoring", 7002, "leadflow.scoring.v1.ScoringService", []string{"routing", "pipeline"}},
	{"routing", 7003, "leadflow.routing.v1.RoutingService", []string{"scoring", "capture"}},
	{"pipeline", 7004, "leadflow.pipeline.v1.PipelineService", []string{"scoring"}},
	{"reporting", 7005, "leadflow.reporting.v1.ReportingService", nil},
}

// kinds maps apiVersion/kind to the Go type each document must decode into.
// A kind missing here fails the test: add it deliberately.
var kinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/PersistentVolumeClaim":               func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// manifests is one rendered kustomization, decoded.
type manifests struct {
	dir     string
	objects map[string]any // "Kind/name" → typed object
	order   []string
}

func key(kind, name string) string { return kind + "/" + name }

func get[T any](t *testing.T, m *manifests, kind, name string) *T {
	t.Helper()
	o, ok := m.objects[key(kind, name)]
	if !ok {
		t.Fatalf("%s: no %s %q", m.dir, kind, name)
	}
	v, ok := o.(*T)
	if !ok {
		t.Fatalf("%s: %s %q is a %T", m.dir, kind, name, o)
	}
	return v
}

func lookup[T any](m *manifests, kind, name string) (*T, bool) {
	o, ok := m.objects[key(kind, name)]
	if !ok {
		return nil, false
	}
	v, ok := o.(*T)
	return v, ok
}

func all[T any](m *manifests, kind string) []*T {
	var out []*T
	for _, k := range m.order {
		if strings.HasPrefix(k, kind+"/") {
			out = append(out, m.objects[k].(*T))
		}
	}
	return out
}

// render runs kustomize (the Go API, as kubectl does) on dir.
func render(t *testing.T, dir string) []byte {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	return out
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode splits a YAML stream and decodes every document strictly (unknown
// or duplicate fields are errors) into its Kubernetes API type.
func decode(t *testing.T, dir string, stream []byte) *manifests {
	t.Helper()
	m := &manifests{dir: dir, objects: map[string]any{}}
	for i, doc := range docSep.Split(string(stream), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s: document %d: %v", dir, i, err)
		}
		newObj := kinds[head.APIVersion+"/"+head.Kind]
		if newObj == nil {
			t.Errorf("%s: document %d: %s %s %q: not a kind LeadFlow's manifests expect", dir, i, head.APIVersion, head.Kind, head.Metadata.Name)
			continue
		}
		obj := newObj()
		if err := strictDecode([]byte(doc), obj); err != nil {
			t.Errorf("%s: %s %q does not decode strictly into %T: %v", dir, head.Kind, head.Metadata.Name, obj, err)
			continue
		}
		k := key(head.Kind, head.Metadata.Name)
		if _, dup := m.objects[k]; dup {
			t.Errorf("%s: %s twice", dir, k)
		}
		m.objects[k] = obj
		m.order = append(m.order, k)
	}
	if len(m.objects) == 0 {
		t.Fatalf("%s: rendered nothing", dir)
	}
	return m
}

// strictDecode decodes one YAML document the way the API server does in
// strict field validation: duplicate keys, unknown fields and fields whose
// case differs from the API (which encoding/json would accept) are errors.
func strictDecode(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

var (
	renderedMu sync.Mutex
	rendered   = map[string]*manifests{}
)

// load renders and decodes dir once per test binary; the result is shared,
// so callers must not modify it.
func load(t *testing.T, dir string) *manifests {
	t.Helper()
	renderedMu.Lock()
	defer renderedMu.Unlock()
	if m, ok := rendered[dir]; ok {
		return m
	}
	m := decode(t, dir, render(t, dir))
	if !t.Failed() {
		rendered[dir] = m
	}
	return m
}

// TestRenderAgreesWithKubectl renders every kustomization with kubectl too
// (the tool an operator uses) and requires the same objects.
func TestRenderAgreesWithKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("SKIPPED: kubectl is not on PATH; the kustomize Go API rendering in the other tests still ran")
	}
	for _, dir := range []string{"base", "overlays/dev", "overlays/production"} {
		t.Run(dir, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := exec.Command(kubectl, "kustomize", dir)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
			}
			viaKubectl := decode(t, dir+" (kubectl)", out)
			viaAPI := load(t, dir)
			if a, b := sortedKeys(viaKubectl.objects), sortedKeys(viaAPI.objects); strings.Join(a, ",") != strings.Join(b, ",") {
				t.Fatalf("objects differ:\nkubectl: %v\nGo API:  %v", a, b)
			}
			for k, o := range viaAPI.objects {
				if !equality.Semantic.DeepEqual(o, viaKubectl.objects[k]) {
					t.Errorf("%s renders differently with kubectl", k)
				}
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
