module github.com/hypersdk/hypersdk/examples/go

go 1.22

require github.com/hypersdk/hypersdk/bindings/go v0.0.0

replace github.com/hypersdk/hypersdk/bindings/go => ../../bindings/go
