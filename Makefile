# The two commands of the quick start:
#   make run    install missing packages, build, launch the default graph, print results
#   make test   install missing packages, build, run every test (GPU tests skip without a GPU)
# Other targets: deps, build, asan, fuzz, format, format-check, bench-bus, clean.

BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

DEB_PACKAGES := build-essential cmake ninja-build pkg-config libcaf-dev libzmq3-dev cppzmq-dev \
  libmsgpack-cxx-dev libgtest-dev libgmock-dev libbenchmark-dev libyaml-cpp-dev libspdlog-dev \
  libfmt-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libsodium-dev libspng-dev zlib1g-dev \
  dataset-fashion-mnist python3 python3-venv python3-setuptools python3-wheel clang-14 clang-format-14 libclang-rt-14-dev libfuzzer-14-dev \
  slurm-wlm munge iproute2 util-linux

.PHONY: deps build run test asan fuzz format format-check bench-bus clean

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./scripts/run_demo.sh $(BUILD)

test: format-check build asan
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 600
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -R hostile_input
	$(MAKE) fuzz

# The C++/CUDA sources in .clang-format's style: `make format` rewrites them, `make format-check`
# (the first step of `make test`) names every file that differs and fails.
FORMAT_FILES = git ls-files -z '*.cpp' '*.hpp' '*.cu' '*.cuh' '*.h' '*.cc'
format: deps
	$(FORMAT_FILES) | xargs -0 clang-format-14 -i
format-check: deps
	$(FORMAT_FILES) | xargs -0 clang-format-14 --dry-run --Werror

# Every libFuzzer target (fuzz/) for FUZZ_SECONDS each, in a clang-14 ASan+UBSan tree of its own;
# a crash fails the target and leaves its reproducer in $(FUZZ_BUILD)/crashes/.
fuzz: deps
	GFDIT_FUZZ_BUILD=$(CURDIR)/$(FUZZ_BUILD) JOBS=$(JOBS) ./fuzz/run.sh $(FUZZ_SECONDS)

# The hostile-input table under AddressSanitizer and UBSan: a small second tree, messages only.
asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGFDIT_SANITIZE=ON -DGFDIT_CUDA=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target test_messages

bench-bus: build
	./$(BUILD)/bench/bus/bench_bus

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
