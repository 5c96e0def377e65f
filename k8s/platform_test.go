package k8s_test

import (
	"reflect"
	"strings"
	"testing"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
	"github.com/leadflow/leadflow/services/platform"
)

// TestServiceTable: the ports and health service names the manifests are
// checked against are the platform's default ports and the generated
// services' full names (what a service registers with health).
func TestServiceTable(t *testing.T) {
	names := map[string]string{
		"capture":   capturev1.CaptureService_ServiceDesc.ServiceName,
		"scoring":   scoringv1.ScoringService_ServiceDesc.ServiceName,
		"routing":   routingv1.RoutingService_ServiceDesc.ServiceName,
		"pipeline":  pipelinev1.PipelineService_ServiceDesc.ServiceName,
		"reporting": reportingv1.ReportingService_ServiceDesc.ServiceName,
	}
	if len(platform.DefaultPorts) != len(services) {
		t.Errorf("platform.DefaultPorts has %d services, the table %d", len(platform.DefaultPorts), len(services))
	}
	for _, s := range services {
		if p := platform.DefaultPorts[s.name]; p != int(s.port) {
			t.Errorf("%s: port %d, platform.DefaultPorts says %d", s.name, s.port, p)
		}
		if names[s.name] != s.proto {
			t.Errorf("%s: health name %q, the generated service is %q", s.name, s.proto, names[s.name])
		}
	}
}

// reflectVars lists the `env` tags of a config struct the way caarlos0/env
// sees them at start-up: by reflection, through nested and embedded structs.
func reflectVars(t reflect.Type, out map[string]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, ok := f.Tag.Lookup("env"); ok && name != "" && name != "-" {
			out[strings.Split(name, ",")[0]] = f.Type.String()
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
			reflectVars(f.Type, out)
		}
	}
}

// TestPlatformVarsByReflection: the variables the manifests are checked
// against (read from the source) are exactly those platform.Base declares,
// by reflection over the compiled type.
func TestPlatformVarsByReflection(t *testing.T) {
	byReflection := map[string]string{}
	reflectVars(reflect.TypeOf(platform.Base{}), byReflection)
	fromSource := readVars(t)
	if len(byReflection) == 0 {
		t.Fatal("platform.Base has no env tags")
	}
	for name, typ := range byReflection {
		v, ok := fromSource[name]
		if !ok {
			t.Errorf("%s (%s) is in platform.Base but not found in the source", name, typ)
			continue
		}
		if v.Type != typ {
			t.Errorf("%s: source says %s, reflection %s", name, v.Type, typ)
		}
	}
	for name := range fromSource {
		if _, ok := byReflection[name]; !ok {
			t.Errorf("%s found in the source but not in platform.Base", name)
		}
	}
}
