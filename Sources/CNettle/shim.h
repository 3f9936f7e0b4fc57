/* Nettle's DES, for RFB's VNC Authentication (IonLabRFB). */
#include <nettle/des.h>
