// Command pipeline serves leadflow.pipeline.v1.PipelineService.
package main

import (
	"context"

	"github.com/leadflow/leadflow/services/pipeline/app"
	"github.com/leadflow/leadflow/services/platform"
)

func main() {
	platform.Main("pipeline", func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := app.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return app.New(ctx, rt, cfg)
	})
}
