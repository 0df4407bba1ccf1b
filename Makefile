# The two commands of the quick start:
#   make run    install missing packages, build, launch the default graph, print results
#   make test   install missing packages, build, run every test (GPU tests skip without a GPU)
# Other targets: deps, build, asan, bench-bus, clean.

BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

DEB_PACKAGES := build-essential cmake ninja-build pkg-config libcaf-dev libzmq3-dev cppzmq-dev \
  libmsgpack-cxx-dev libgtest-dev libgmock-dev libbenchmark-dev libyaml-cpp-dev libspdlog-dev \
  libfmt-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libsodium-dev libspng-dev zlib1g-dev \
  dataset-fashion-mnist python3

.PHONY: deps build run test asan bench-bus clean

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

test: build asan
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 600
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -R hostile_input

# The hostile-input table under AddressSanitizer and UBSan: a small second tree, messages only.
asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGFDIT_SANITIZE=ON -DGFDIT_CUDA=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target test_messages

bench-bus: build
	./$(BUILD)/bench/bus/bench_bus

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
