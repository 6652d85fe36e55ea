# common: the helpers every binary shares (host/common/common.h is the contract).
# Each binary links COMMON_OBJS: here for sesh-pool (its recipe links $^), in
# host.mk for sesh, libsesh and sessions.so.
COMMON_OBJS := $(patsubst host/%.c,$(OBJ)/%.o,$(wildcard host/common/*.c))

$(BIN)/sesh-pool: $(COMMON_OBJS)
