module github.com/leadflow/leadflow/cmd

go 1.25.0
