// Command capture serves leadflow.capture.v1.CaptureService: the marketing
// edge where every channel submits leads and engagement signals.
package main

import (
	"context"

	"github.com/leadflow/leadflow/services/capture/app"
	"github.com/leadflow/leadflow/services/platform"
)

func main() {
	platform.Main("capture", func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := app.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return app.New(ctx, rt, cfg)
	})
}
